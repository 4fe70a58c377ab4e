//! The customer portal, mounted by `api` at `/portal`: a customer's orders,
//! keys and devices, signed in by an emailed link.

mod pages;
mod view;

pub use pages::ORDERS_QUERY;

use crate::{Execute, PortalAuth, PortalOptions, csrf, executor, secured};
use poem::{Endpoint, EndpointExt, Request, Route, get, post};
use std::sync::Arc;

/// The cookie holding a signed-in customer's session token.
pub const SESSION_COOKIE: &str = "keysmith_portal";

/// What every handler shares.
pub(crate) struct Portal {
    execute: Execute,
    auth: Box<dyn PortalAuth>,
    pub(crate) options: PortalOptions,
}

impl Portal {
    /// Runs `query` with the request's identity.
    pub(crate) async fn run(
        &self,
        req: &Request,
        session: Option<&str>,
        query: &str,
        variables: serde_json::Value,
    ) -> async_graphql::Response {
        let mut request = async_graphql::Request::new(query).variables(async_graphql::Variables::from_json(variables));
        request.data = self.auth.request_data(req, session).await;
        (self.execute)(request).await
    }
}

/// The customer portal's routes, to be nested under `/portal`.
pub fn routes<E, A>(schema: E, auth: A, options: PortalOptions) -> impl Endpoint
where
    E: async_graphql::Executor + Clone,
    A: PortalAuth,
{
    let csrf = csrf(&options, "keysmith_portal_csrf", "/portal");
    let portal = Arc::new(Portal { execute: executor(schema), auth: Box::new(auth), options });
    secured(
        Route::new()
            .at("/", get(pages::orders))
            .at("/login", get(pages::login_form).post(pages::login))
            .at("/link", post(pages::follow_link))
            .at("/link/:token", get(pages::open_link))
            .at("/reveal", post(pages::reveal))
            .at("/devices/deactivate", post(pages::deactivate))
            .at("/licenses/:id/offline-licence", post(pages::offline_file))
            .at("/logout", post(pages::logout))
            .at("/static/portal.css", get(pages::stylesheet))
            .at("/static/portal.js", get(pages::script))
            .data(portal)
            .with(csrf),
    )
}
