// Runs one query three times through urql with its automatic persisted
// queries exchange (hashes by GET, the text sent only when the server asks)
// and prints, as JSON, every HTTP request the client made and each result:
//   {"requests": [{"method": "GET", "hashOnly": true, "status": 200, "codes": [...]}, ...],
//    "results": [{"data": ..., "error": ...}, ...]}
// Usage: node persisted.js <http-url> <token> <query> [variables JSON]
'use strict';
const { Client, fetchExchange } = require('@urql/core');
const { persistedExchange } = require('@urql/exchange-persisted');

const [url, token, query, variables] = process.argv.slice(2);
const requests = [];

async function recordingFetch(input, init) {
  const target = new URL(typeof input === 'string' ? input : input.url);
  const method = (init && init.method) || 'GET';
  const body = init && typeof init.body === 'string' ? JSON.parse(init.body) : null;
  const hashOnly = method === 'GET' ? !target.searchParams.get('query') : !(body && body.query);
  const response = await fetch(input, init);
  const copy = await response.clone().json().catch(() => null);
  const codes = ((copy && copy.errors) || []).map((e) => e.extensions && e.extensions.code);
  requests.push({ method, hashOnly, status: response.status, codes });
  return response;
}

(async () => {
  const client = new Client({
    url,
    fetch: recordingFetch,
    preferGetMethod: false,
    fetchOptions: { headers: { Authorization: `Bearer ${token}` } },
    exchanges: [persistedExchange({ preferGetForPersistedQueries: true }), fetchExchange],
  });
  const results = [];
  for (let i = 0; i < 3; i++) {
    const result = await client
      .query(query, variables ? JSON.parse(variables) : {}, { requestPolicy: 'network-only' })
      .toPromise();
    results.push({ data: result.data || null, error: result.error ? String(result.error) : null });
  }
  process.stdout.write(JSON.stringify({ requests, results }) + '\n');
})();
