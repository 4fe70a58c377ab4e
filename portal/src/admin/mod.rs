//! The admin portal, mounted by `api` at `/admin`: staff sign in with email
//! and password and work in the browser through the staff schema, with their
//! own identity and role, in the environment they chose.
//!
//! A page checks who is asking with the same operation a frontend would
//! (`me`), so a session that was signed out, disabled, demoted or left idle
//! sends the browser back to the sign-in form at once.

mod actions;
mod create;
mod customers;
mod edit;
mod generators;
mod home;
mod integrations;
mod jobs;
mod licenses;
mod orders;
mod pages;
mod pools;
mod preview;
mod products;
mod records;
mod search;
mod settings;
mod staff;
mod tags;
mod upload;
mod webhooks;

pub use licenses::LICENSES_QUERY;

use crate::{Execute, PortalAuth, PortalOptions, csrf, executor, secured};
use poem::error::SizedLimitError;
use poem::http::Method;
use poem::web::headers::{ContentLength, HeaderMapExt};
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Route, get, post};
use std::future::Future;
use std::sync::Arc;

/// The most bytes of a refused body read off the wire before the refusal.
const DRAINED: u64 = 4 * 1024 * 1024;

/// The cookie holding a signed-in staff member's session token.
pub const SESSION_COOKIE: &str = "keysmith_admin";
/// The cookie naming the environment the admin portal works in
/// (`production` or `staging`); production without it.
pub const ENVIRONMENT_COOKIE: &str = "keysmith_admin_env";

/// What every handler shares.
pub(crate) struct Admin {
    execute: Execute,
    auth: Box<dyn PortalAuth>,
    pub(crate) options: PortalOptions,
    /// Key uploads running or reported on this node.
    pub(crate) uploads: Arc<Uploads>,
}

/// Key uploads by their page's id (see `upload`).
#[derive(Default)]
pub(crate) struct Uploads(std::sync::Mutex<std::collections::HashMap<String, upload::Ticket>>);

impl Admin {
    /// Runs `query` with the request's identity (the session's, when given).
    /// The data a request with the session's identity runs with.
    pub(crate) async fn request_data(&self, req: &Request, session: Option<&str>) -> async_graphql::Data {
        self.auth.request_data(req, session).await
    }

    /// Starts a request already carrying its data; it runs to its end even
    /// when the browser that asked has gone.
    pub(crate) fn start(
        &self,
        request: async_graphql::Request,
    ) -> std::pin::Pin<Box<dyn Future<Output = async_graphql::Response> + Send>> {
        (self.execute)(request)
    }

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

    /// Streams an export with the session's identity (see [`PortalAuth::export`]).
    pub(crate) async fn export(&self, req: &Request, session: &str, export: crate::Export) -> poem::Response {
        self.auth.export(req, session, export).await
    }
}

/// The admin portal's routes, to be nested under `/admin`. `schema` is the
/// staff schema; `auth` turns the session cookie into the staff member's
/// identity (and the environment cookie into the request's environment).
pub fn routes<E, A>(schema: E, auth: A, options: PortalOptions) -> impl Endpoint
where
    E: async_graphql::Executor + Clone,
    A: PortalAuth,
{
    let csrf = csrf(&options, "keysmith_admin_csrf", "/admin");
    // Bodies are bounded before anything reads them: forms by the API's
    // request limit, key uploads by its upload limit.
    let form_limit = options.max_form_bytes.saturating_add(16 * 1024);
    let upload_limit = options.max_upload_bytes.saturating_add(form_limit);
    let admin = Arc::new(Admin {
        execute: executor(schema),
        auth: Box::new(auth),
        options,
        uploads: Arc::new(Uploads::default()),
    });
    secured(
        Route::new()
            .at("/", get(home::home))
            .at("/licenses", get(licenses::licenses))
            .at("/keys", get(tags::overview))
            .at("/keys/tags", post(pools::create_tag))
            .at("/keys/tags/:id", get(tags::tag_keys))
            .at("/keys/tags/:id/bulk", post(pools::bulk_confirm))
            .at("/keys/tags/:id/bulk/apply", post(pools::bulk_apply))
            .at("/keys/tags/:id/rename", get(pools::rename_form).post(pools::rename))
            .at("/keys/tags/:id/:what", get(pools::more).post(pools::tag_action))
            .at("/keys/upload", get(upload::upload_form).post(upload::upload))
            .at("/keys/upload/:id", get(upload::report))
            .at("/licenses/new", get(create::new_form).post(create::create))
            .at("/licenses/export.csv", get(licenses::export_csv))
            .at("/licenses/export.json", get(licenses::export_json))
            .at("/licenses/:id", get(preview::preview))
            .at("/licenses/:id/edit", get(edit::edit_form).post(edit::edit))
            .at("/licenses/:id/assign", get(edit::assign_form).post(edit::assign))
            .at("/licenses/:id/offline-licence", get(preview::offline_file))
            .at("/licenses/:id/devices/:device/deactivate", post(preview::deactivate))
            .at("/licenses/:id/confirm/:action", get(actions::confirm))
            .at("/licenses/:id/:action", post(actions::act))
            .at("/generators", get(generators::generators))
            .at("/generators/new", get(generators::new_form).post(generators::create))
            .at("/generators/:id/edit", get(generators::edit_form).post(generators::update))
            .at("/generators/:id/delete", get(generators::delete_confirm).post(generators::delete))
            .at("/generators/:id/generate", get(generators::generate_form).post(generators::generate))
            .at("/products", get(products::products))
            .at("/products/new", get(products::new_form).post(products::create))
            .at("/products/:id", get(products::product))
            .at("/products/:id/edit", get(products::edit_form).post(products::update))
            .at("/products/:id/archive", get(products::archive_confirm).post(products::archive))
            .at("/customers", get(customers::customers))
            .at("/customers/new", get(customers::new_form).post(customers::create))
            .at("/customers/:id", get(customers::customer))
            .at("/customers/:id/edit", get(customers::edit_form).post(customers::update))
            .at("/customers/:id/portal-link", post(customers::send_link))
            .at("/orders", get(orders::orders))
            .at("/orders/:id", get(orders::order_page))
            .at("/orders/:id/lines/:line/reassign", get(orders::reassign_form).post(orders::reassign))
            .at("/orders/:id/keys/:license/unassign", get(orders::unassign_form).post(orders::unassign))
            .at("/orders/:id/refund", get(orders::refund_form).post(orders::refund))
            .at("/activations", get(records::activations))
            .at("/audit", get(records::audit))
            .at("/settings", get(settings::settings).post(settings::save_settings))
            .at("/users", get(staff::users).post(staff::create_user))
            .at("/users/:id", post(staff::change_user))
            .at("/account", get(staff::account))
            .at("/account/password", post(staff::change_password))
            .at("/webhooks", get(webhooks::webhooks).post(webhooks::create_webhook))
            .at("/webhooks/:id", get(webhooks::webhook).post(webhooks::change_webhook))
            .at("/integrations", get(integrations::integrations).post(integrations::create_integration))
            .at("/integrations/:id", get(integrations::integration).post(integrations::change_integration))
            .at("/search", get(search::search))
            .at("/jobs", get(jobs::jobs))
            .at("/jobs/:id", get(jobs::job))
            .at("/login", get(pages::login_form).post(pages::login))
            .at("/logout", post(pages::logout))
            .at("/reauth", post(preview::reauth))
            .at("/environment", post(pages::switch_environment))
            .at("/static/admin.css", get(pages::stylesheet))
            .at("/static/admin.js", get(pages::script))
            .data(admin)
            .with(csrf)
            .around(move |ep, mut req| async move {
                if req.method() == Method::POST {
                    let limit = if req.uri().path().ends_with("/keys/upload") { upload_limit } else { form_limit };
                    match req.headers().typed_get::<ContentLength>() {
                        None => return Err(SizedLimitError::MissingContentLength.into()),
                        Some(ContentLength(length)) if length > limit as u64 => {
                            // A body a little past the limit is read off the wire (and
                            // dropped) so the browser sees the refusal; a larger one is
                            // refused at once and the connection closed.
                            if length <= DRAINED {
                                let mut rest = req.take_body().into_async_read();
                                let _ = tokio::io::copy(&mut rest, &mut tokio::io::sink()).await;
                            }
                            return Err(SizedLimitError::PayloadTooLarge.into());
                        }
                        Some(_) => {}
                    }
                }
                ep.call(req).await.map(IntoResponse::into_response)
            }),
    )
}
