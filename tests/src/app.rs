//! `TestApp`: the real Keysmith server on a free port, over its own fresh
//! database, with helpers to speak GraphQL to it and to mint tokens.

use crate::postgres;
use entity::user::StaffRole;
use keysmith::AppState;
use keysmith::auth::{RequestContext, Role};
use keysmith::config::{Config, LogFormat};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;

/// The signing secret of every test server.
pub const TEST_SECRET: &str = "keysmith-test-secret-0123456789abcdef";
/// The password of every staff account tests create.
pub const TEST_PASSWORD: &str = "correct horse battery staple";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub backend: Backend,
    /// `http://127.0.0.1:<port>`
    pub base_url: String,
    pub http: reqwest::Client,
    pub state: AppState,
    pub database_url: String,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    dir: TempDir,
}

/// A configuration as `keysmith serve` would build it from flags.
pub fn config(database_url: &str) -> Config {
    Config {
        database_url: database_url.to_string(),
        jwt_secret: Some(TEST_SECRET.to_string()),
        listen: "127.0.0.1:0".parse().expect("address"),
        public_url: None,
        token_ttl_minutes: 60,
        max_body_bytes: 64 * 1024,
        max_upload_bytes: 32 * 1024 * 1024,
        sweep_interval_seconds: 1,
        log_format: LogFormat::Human,
        log: "warn".into(),
        db_max_connections: 8,
        offline_signing_key: None,
        client_address_header: None,
        // Test receivers listen on loopback.
        webhook_allow_private: true,
        webhook_retry_seconds: 1,
        smtp_url: None,
        mail_from: "Keysmith <keysmith@example.com>".into(),
        node_id: None,
    }
}

/// A fresh, empty database URL for `backend`, or `None` when PostgreSQL is not
/// installed (outside CI). SQLite files go in `dir`.
pub async fn fresh_database(backend: Backend, dir: &std::path::Path) -> Option<String> {
    match backend {
        Backend::Sqlite => Some(format!("sqlite://{}", dir.join("keysmith.db").display())),
        Backend::Postgres => {
            let cluster = tokio::task::spawn_blocking(postgres::cluster).await.expect("starting PostgreSQL")?;
            let name = format!("t_{}", ulid::Ulid::generate().to_string().to_lowercase());
            let admin = Database::connect(cluster.url("postgres")).await.expect("connect to PostgreSQL");
            admin.execute_unprepared(&format!("CREATE DATABASE \"{name}\"")).await.expect("create a test database");
            admin.close().await.ok();
            Some(cluster.url(&name))
        }
    }
}

impl TestApp {
    /// Starts a server over a fresh database; `None` when the backend is unavailable.
    pub async fn spawn(backend: Backend) -> Option<Self> {
        let dir = tempfile::tempdir().expect("temporary directory");
        let database_url = fresh_database(backend, dir.path()).await?;
        Some(Self::spawn_with(backend, config(&database_url), dir).await)
    }

    /// Starts a server with a configuration of the test's choosing.
    pub async fn spawn_with(backend: Backend, config: Config, dir: TempDir) -> Self {
        if let Ok(filter) = std::env::var("KEYSMITH_TEST_LOG") {
            // Debugging aid: `KEYSMITH_TEST_LOG=debug cargo test …` prints the servers' logs.
            let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
        }
        let database_url = config.database_url.clone();
        let state = AppState::open(config).await.expect("open the app state");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a free port");
        let local = listener.local_addr().expect("local address");
        let base_url = format!("http://{local}");
        state.jobs.set_node(keysmith::background::node_name(&state.config, local));
        let (shutdown, stop) = oneshot::channel::<()>();
        let server_state = state.clone();
        let background = keysmith::background::spawn(state.clone()).await.expect("the job runner starts");
        let server = tokio::spawn(async move {
            keysmith::http::serve(server_state, listener, async {
                stop.await.ok();
            })
            .await
            .expect("the server runs");
            background.abort();
        });
        Self {
            backend,
            base_url,
            http: reqwest::Client::new(),
            state,
            database_url,
            shutdown: Some(shutdown),
            server: Some(server),
            dir,
        }
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.state.db
    }

    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// POSTs a GraphQL request and returns the JSON body, whatever the status.
    pub async fn graphql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        self.graphql_in(token, None, query, variables).await.1
    }

    /// Like [`graphql`](Self::graphql), in a named environment, returning the HTTP status too.
    pub async fn graphql_in(
        &self,
        token: Option<&str>,
        environment: Option<&str>,
        query: &str,
        variables: Value,
    ) -> (u16, Value) {
        let mut req = self.http.post(self.url("/graphql")).json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(env) = environment {
            req = req.header("X-Keysmith-Environment", env);
        }
        let resp = req.send().await.expect("the server answers");
        let status = resp.status().as_u16();
        let body = resp.json::<Value>().await.expect("a JSON body");
        (status, body)
    }

    /// Creates a staff account with `role` and returns a token for it.
    pub async fn staff_token(&self, role: StaffRole) -> String {
        let email = format!("{}-{}@example.com", format!("{role:?}").to_lowercase(), ulid::Ulid::generate());
        let ctx = RequestContext::system(entity::Environment::Production);
        let user = keysmith::services::users::create(self.db(), &ctx, &email, TEST_PASSWORD, role)
            .await
            .unwrap_or_else(|e| panic!("create a {role:?}: {}", e.client_message()));
        keysmith::services::users::issue_token(&self.state.jwt, &user, None, 3600)
            .unwrap_or_else(|e| panic!("token: {}", e.client_message()))
            .token
    }

    /// A customer's token, as the portal will hand out.
    /// A portal session token for `customer_id` (a customer made for it when
    /// there is none), as signing in by link would give.
    pub async fn customer_token(&self, customer_id: &str) -> String {
        use sea_orm::{ActiveModelTrait, EntityTrait, Set};
        let now = entity::now();
        if entity::customer::Entity::find_by_id(customer_id.to_string()).one(self.db()).await.expect("find").is_none() {
            entity::customer::ActiveModel {
                id: Set(customer_id.to_string()),
                environment: Set(entity::Environment::Production),
                email: Set(format!("{}@example.com", customer_id.to_lowercase())),
                name: Set("Someone".into()),
                created_at: Set(now),
                updated_at: Set(now),
            }
            .insert(self.db())
            .await
            .expect("a customer");
        }
        let session = entity::portal_session::ActiveModel {
            id: Set(entity::new_id()),
            customer_id: Set(customer_id.to_string()),
            created_at: Set(now),
            expires_at: Set(now + chrono::Duration::hours(1)),
            ended_at: Set(None),
        }
        .insert(self.db())
        .await
        .expect("a portal session");
        self.state.jwt.issue_session(customer_id, Role::Customer, None, &session.id, 3600).expect("sign").0
    }

    /// Stops the server the way SIGTERM does, waiting for it to finish.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            tx.send(()).ok();
        }
        if let Some(server) = self.server.take() {
            server.await.expect("the server stops cleanly");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            tx.send(()).ok();
        }
    }
}

/// The `extensions.code` of the first error in a GraphQL response.
pub fn error_code(body: &Value) -> Option<&str> {
    body["errors"][0]["extensions"]["code"].as_str()
}

/// The `extensions.field` of the first error: the input the refusal is about.
pub fn error_field(body: &Value) -> Option<&str> {
    body["errors"][0]["extensions"]["field"].as_str()
}

/// The code and field of the first error, empty where absent.
pub fn refusal(body: &Value) -> (&str, &str) {
    (error_code(body).unwrap_or_default(), error_field(body).unwrap_or_default())
}

/// Panics with the whole response unless it has data and no errors.
pub fn data(body: &Value) -> &Value {
    assert!(body.get("errors").is_none(), "unexpected errors: {body:#}");
    &body["data"]
}

/// Test data written straight to the database, for states the API reaches
/// only through later workflows (delivered, activated keys).
pub mod seed {
    use entity::license_key::{self, KeySource};
    use entity::{Environment, LicenseStatus, customer, license_key_tag, order, order_line, product};
    use sea_orm::sea_query::ExprTrait;
    use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};
    use serde_json::json;

    /// A key in `environment` with `status`, carrying `tag_ids`; returns its id.
    pub async fn key(
        db: &DatabaseConnection,
        environment: Environment,
        key: &str,
        status: LicenseStatus,
        tag_ids: &[&str],
    ) -> String {
        let now = entity::now();
        let row = license_key::ActiveModel {
            id: Set(entity::new_id()),
            environment: Set(environment),
            key: Set(key.to_string()),
            product_id: Set(None),
            source: Set(KeySource::Uploaded),
            generator_id: Set(None),
            status: Set(status),
            customer_id: Set(None),
            order_line_id: Set(None),
            activation_limit: Set(1),
            expires_at: Set(None),
            feature_flags: Set(json!({})),
            metadata: Set(json!({})),
            created_at: Set(now),
            updated_at: Set(now),
            assigned_at: Set(None),
            activated_at: Set(None),
            revealed_at: Set(None),
            revoked_at: Set(None),
            devices_in_use: Set(0),
            renewed_from_id: Set(None),
            expiry_from_delivery: Set(false),
        }
        .insert(db)
        .await
        .expect("insert a key");
        for tag_id in tag_ids {
            license_key_tag::ActiveModel { license_key_id: Set(row.id.clone()), tag_id: Set((*tag_id).to_string()) }
                .insert(db)
                .await
                .expect("tag a key");
        }
        row.id
    }

    /// A device on the licence `licence_id`, as if activated (and, with
    /// `ended`, deactivated again): the activation row and, for a live one,
    /// the licence's count of devices in use. Returns the activation's id.
    pub async fn device(
        db: &DatabaseConnection,
        licence_id: &str,
        fingerprint: &str,
        (name, platform): (&str, &str),
        last_seen_at: chrono::DateTime<chrono::Utc>,
        ended: bool,
    ) -> String {
        let id = entity::new_id();
        entity::activation::ActiveModel {
            id: Set(id.clone()),
            license_key_id: Set(licence_id.to_string()),
            fingerprint: Set(fingerprint.to_string()),
            name: Set(Some(name.to_string())),
            platform: Set(Some(platform.to_string())),
            client_address: Set(None),
            created_at: Set(entity::now()),
            last_seen_at: Set(last_seen_at),
            deactivated_at: Set(ended.then(entity::now)),
        }
        .insert(db)
        .await
        .expect("activation");
        if !ended {
            license_key::Entity::update_many()
                .col_expr(
                    license_key::Column::DevicesInUse,
                    sea_orm::sea_query::Expr::col(license_key::Column::DevicesInUse).add(1),
                )
                .filter(license_key::Column::Id.eq(licence_id))
                .exec(db)
                .await
                .expect("count the device");
        }
        id
    }

    /// Delivers the key `key_id` to a new customer through a new order; returns the order id.
    pub async fn deliver(db: &DatabaseConnection, key_id: &str, activated: bool) -> String {
        let now = entity::now();
        let product = product::ActiveModel {
            id: Set(entity::new_id()),
            environment: Set(Environment::Production),
            name: Set(format!("Product {}", entity::new_id())),
            description: Set(String::new()),
            status: Set(product::ProductStatus::Active),
            delivery_mode: Set(product::DeliveryMode::NoTag),
            delivery_tag_id: Set(None),
            generator_id: Set(None),
            key_button_text: Set("Licence Key".into()),
            unavailable_message: Set("soon".into()),
            requires_fingerprint: Set(false),
            renewal_period_unit: Set(None),
            renewal_period_count: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(db)
        .await
        .expect("product");
        let customer = customer::ActiveModel {
            id: Set(entity::new_id()),
            environment: Set(Environment::Production),
            email: Set(format!("{}@example.com", entity::new_id().to_lowercase())),
            name: Set("Buyer".into()),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(db)
        .await
        .expect("customer");
        let order = order::ActiveModel {
            id: Set(entity::new_id()),
            environment: Set(Environment::Production),
            external_id: Set(entity::new_id()),
            customer_id: Set(customer.id.clone()),
            status: Set(order::OrderStatus::Fulfilled),
            created_at: Set(now),
            updated_at: Set(now),
            refunded_at: Set(None),
        }
        .insert(db)
        .await
        .expect("order");
        let line = order_line::ActiveModel {
            id: Set(entity::new_id()),
            order_id: Set(order.id.clone()),
            product_id: Set(product.id.clone()),
            quantity: Set(1),
            missing: Set(0),
            renews_license_id: Set(None),
            renewal_outcome: Set(None),
            created_at: Set(now),
        }
        .insert(db)
        .await
        .expect("order line");
        let mut key: license_key::ActiveModel =
            license_key::Entity::find_by_id(key_id.to_string()).one(db).await.expect("read").expect("the key").into();
        key.status = Set(if activated { LicenseStatus::Active } else { LicenseStatus::Assigned });
        key.customer_id = Set(Some(customer.id));
        key.order_line_id = Set(Some(line.id));
        key.product_id = Set(Some(product.id));
        key.assigned_at = Set(Some(now));
        key.activated_at = Set(activated.then_some(now));
        key.update(db).await.expect("deliver");
        order.id
    }
}
