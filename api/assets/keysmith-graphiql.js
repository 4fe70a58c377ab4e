// Keysmith's start-up script for the vendored GraphiQL: queries and mutations
// over HTTP to the page's endpoint, subscriptions over the graphql-ws protocol
// on the same address. Headers typed in the headers pane (an
// `Authorization: Bearer …`) go with both.
(function () {
  'use strict';
  // Anything the page's Content-Security-Policy refuses is counted on the
  // page, so a refused file shows up in a test rather than as a half-styled IDE.
  var refused = [];
  document.addEventListener('securitypolicyviolation', function (e) {
    refused.push(e.effectiveDirective + ' ' + (e.blockedURI || 'inline'));
    document.documentElement.setAttribute('data-csp-refused', refused.join(' | '));
  });
  document.addEventListener('DOMContentLoaded', function () {
    var root = document.getElementById('graphiql');
    var endpoint = root.getAttribute('data-endpoint');
    var socket = location.origin.replace(/^http/, 'ws') + endpoint;
    var fetcher = GraphiQL.createFetcher({ url: endpoint, subscriptionUrl: socket });
    ReactDOM.createRoot(root).render(
      React.createElement(GraphiQL, { fetcher: fetcher, defaultEditorToolsVisibility: 'headers' })
    );
  });
})();
