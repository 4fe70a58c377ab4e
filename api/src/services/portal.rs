//! The customer portal's sign-in: single-use links (asked for by email,
//! handed over by staff, or sent with an order) that open a session, and the
//! sessions themselves, which signing out ends. Only a hash of each link's
//! token is stored; the token is in the link and nowhere else.

use super::audit::{self, Change};
use super::email;
use crate::auth::jwt::JwtKeys;
use crate::auth::{RequestContext, Role, Viewer, may};
use crate::db::begin_write;
use crate::error::{AppError, AppResult};
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use entity::values::Email;
use entity::{customer, portal_link, portal_session};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter,
    QueryTrait, Set, Statement,
};
use sha2::{Digest, Sha256};

/// A link asked for on the portal's sign-in page.
pub const SIGN_IN_LINK_MINUTES: i64 = 15;
/// A link in an order's email: the buyer may open it days later.
pub const ORDER_LINK_DAYS: i64 = 7;
/// A link staff hand over (support, by chat or phone).
pub const STAFF_LINK_HOURS: i64 = 24;
/// How long a portal session lasts.
pub const SESSION_DAYS: i64 = 7;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    SignIn,
    Order,
    Staff,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::SignIn => "SIGN_IN",
            Purpose::Order => "ORDER",
            Purpose::Staff => "STAFF",
        }
    }

    fn lifetime(self) -> Duration {
        match self {
            Purpose::SignIn => Duration::minutes(SIGN_IN_LINK_MINUTES),
            Purpose::Order => Duration::days(ORDER_LINK_DAYS),
            Purpose::Staff => Duration::hours(STAFF_LINK_HOURS),
        }
    }
}

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The portal address a link's token opens.
pub fn link_url(base: &str, token: &str) -> String {
    format!("{base}/portal/link/{token}")
}

/// A new single-use link for `customer_id`, inside the caller's transaction.
pub(crate) async fn issue_link(
    txn: &impl ConnectionTrait,
    customer_id: &str,
    purpose: Purpose,
) -> AppResult<(String, DateTime<Utc>)> {
    let (insert, token, expires_at) = new_link(txn.get_database_backend(), customer_id, purpose);
    txn.execute_raw(insert).await?;
    Ok((token, expires_at))
}

/// The insert of a new single-use link for `customer_id`, its token and when it expires.
fn new_link(backend: DbBackend, customer_id: &str, purpose: Purpose) -> (Statement, String, DateTime<Utc>) {
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let now = entity::now();
    let expires_at = now + purpose.lifetime();
    let insert = portal_link::Entity::insert(portal_link::ActiveModel {
        id: Set(entity::new_id()),
        customer_id: Set(customer_id.to_string()),
        token_hash: Set(hash(&token)),
        purpose: Set(purpose.as_str().to_string()),
        created_at: Set(now),
        expires_at: Set(expires_at),
        used_at: Set(None),
    });
    (QueryTrait::build(&insert, backend), token, expires_at)
}

fn greeting(customer: &customer::Model) -> String {
    if customer.name.is_empty() { "Hello,".to_string() } else { format!("Hello {},", customer.name) }
}

/// The writes that email `customer` a link to their order's keys: the
/// link and the message, for the order's transaction to run.
pub(crate) fn order_link(
    backend: DbBackend,
    customer: &customer::Model,
    order_external_id: &str,
    base: &str,
) -> Vec<Statement> {
    let (link, token, _) = new_link(backend, &customer.id, Purpose::Order);
    let subject = format!("Your licence keys for order {order_external_id}");
    let body = format!(
        "{}\n\nThank you for your order {order_external_id}. Your licence keys are waiting for you:\n\n{}\n\n\
         The link signs you in once and works for {ORDER_LINK_DAYS} days. Later, ask for a new one at {base}/portal/login.\n",
        greeting(customer),
        link_url(base, &token),
    );
    let message = email::queued(backend, Some(customer.environment), "portal.order", &customer.email, &subject, &body);
    vec![link, message]
}

/// Tells the customer `customer_id` of a change to their order, with a link
/// to their keys, inside the change's transaction.
pub(crate) async fn notify_customer(
    txn: &impl ConnectionTrait,
    customer_id: &str,
    kind: &str,
    subject: &str,
    news: &str,
    base: &str,
) -> AppResult<()> {
    let customer = customer::Entity::find_by_id(customer_id.to_string())
        .one(txn)
        .await?
        .ok_or_else(|| AppError::internal(format!("customer {customer_id} vanished")))?;
    let (token, _) = issue_link(txn, &customer.id, Purpose::Order).await?;
    let body = format!(
        "{}\n\n{news}\n\nSee your licence keys here:\n\n{}\n\n\
         The link signs you in once and works for {ORDER_LINK_DAYS} days. Later, ask for a new one at {base}/portal/login.\n",
        greeting(&customer),
        link_url(base, &token),
    );
    email::queue(txn, Some(customer.environment), kind, &customer.email, subject, &body).await
}

/// Sends a sign-in link to the customer with `email`, if there is one. The
/// caller answers the same either way.
pub async fn request_link(db: &DatabaseConnection, ctx: &RequestContext, email: &str, base: &str) -> AppResult<()> {
    let email = Email::parse("email", email)?;
    let txn = begin_write(db).await?;
    let Some(customer) = customer::Entity::find()
        .filter(customer::Column::Environment.eq(ctx.environment))
        .filter(customer::Column::Email.eq(email.as_str()))
        .one(&txn)
        .await?
    else {
        txn.rollback().await?;
        return Ok(());
    };
    let (token, _) = issue_link(&txn, &customer.id, Purpose::SignIn).await?;
    let body = format!(
        "{}\n\nUse this link to sign in and see your licence keys:\n\n{}\n\n\
         It works once, for {SIGN_IN_LINK_MINUTES} minutes. If you did not ask for it, ignore this email.\n",
        greeting(&customer),
        link_url(base, &token),
    );
    email::queue(&txn, Some(customer.environment), "portal.sign_in", &customer.email, "Your sign-in link", &body)
        .await?;
    audit::record(
        &txn,
        ctx,
        Change {
            action: "portal.link_requested",
            target_kind: "customer",
            target_id: &customer.id,
            ..Change::default()
        },
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// A link for staff to hand to `customer_id` (at `base`), and, with
/// `email_base`, emailed to them pointing there: its address for staff and
/// when it expires.
pub async fn create_link(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    customer_id: &str,
    base: &str,
    email_base: Option<&str>,
) -> AppResult<(String, DateTime<Utc>)> {
    ctx.viewer.require(may::SWITCH)?;
    let txn = begin_write(db).await?;
    let customer = super::customers::find(&txn, ctx, customer_id)
        .await?
        .ok_or_else(|| AppError::not_found_in("customer", "customerId"))?;
    let (token, expires_at) = issue_link(&txn, &customer.id, Purpose::Staff).await?;
    if let Some(email_base) = email_base {
        let body = format!(
            "{}\n\nHere is a link to sign in and see your licence keys:\n\n{}\n\n\
             It works once, for {STAFF_LINK_HOURS} hours. Later, ask for a new one at {email_base}/portal/login.\n",
            greeting(&customer),
            link_url(email_base, &token),
        );
        let subject = "Your sign-in link";
        email::queue(&txn, Some(customer.environment), "portal.link", &customer.email, subject, &body).await?;
    }
    audit::record(
        &txn,
        ctx,
        Change {
            action: "portal.link_created",
            target_kind: "customer",
            target_id: &customer.id,
            after: Some(serde_json::json!({ "expiresAt": expires_at, "emailed": email_base.is_some() })),
            ..Change::default()
        },
    )
    .await?;
    txn.commit().await?;
    Ok((link_url(base, &token), expires_at))
}

/// A signed-in portal session: the token that carries it, and its end.
pub struct Session {
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

/// Spends a link's token and opens a session for its customer. An unknown,
/// used or expired token gets the same answer.
pub async fn sign_in(db: &DatabaseConnection, jwt: &JwtKeys, token: &str) -> AppResult<Session> {
    let refused = || AppError::invalid("token", "the link has expired or was already used; ask for a new one");
    if token.is_empty() || token.len() > 100 {
        return Err(refused());
    }
    let now = entity::now();
    let txn = begin_write(db).await?;
    let link = portal_link::Entity::find()
        .filter(portal_link::Column::TokenHash.eq(hash(token)))
        .filter(portal_link::Column::UsedAt.is_null())
        .filter(portal_link::Column::ExpiresAt.gt(now))
        .one(&txn)
        .await?
        .ok_or_else(refused)?;
    // Single use, however many requests race with the same link.
    let spent = portal_link::Entity::update_many()
        .col_expr(portal_link::Column::UsedAt, Expr::value(now))
        .filter(portal_link::Column::Id.eq(link.id.as_str()))
        .filter(portal_link::Column::UsedAt.is_null())
        .exec(&txn)
        .await?
        .rows_affected;
    if spent != 1 {
        return Err(refused());
    }
    let customer = customer::Entity::find_by_id(link.customer_id.clone()).one(&txn).await?.ok_or_else(refused)?;
    let session = portal_session::ActiveModel {
        id: Set(entity::new_id()),
        customer_id: Set(customer.id.clone()),
        created_at: Set(now),
        expires_at: Set(now + Duration::days(SESSION_DAYS)),
        ended_at: Set(None),
    }
    .insert(&txn)
    .await?;
    let ctx = RequestContext::new(Viewer::Customer { customer_id: customer.id.clone() }, customer.environment);
    audit::record(
        &txn,
        &ctx,
        Change {
            action: "portal.signed_in",
            target_kind: "customer",
            target_id: &customer.id,
            after: Some(serde_json::json!({ "link": link.purpose, "session": session.id })),
            ..Change::default()
        },
    )
    .await?;
    let ttl = (SESSION_DAYS * 24 * 3600) as u64;
    let (token, _) = jwt
        .issue_session(&customer.id, Role::Customer, Some(customer.environment), &session.id, ttl)
        .map_err(AppError::internal)?;
    txn.commit().await?;
    Ok(Session { token, expires_at: session.expires_at })
}

/// Whether the session `id` of `customer_id` is still open.
pub(crate) async fn session_open(db: &DatabaseConnection, id: &str, customer_id: &str) -> AppResult<bool> {
    let open = portal_session::Entity::find_by_id(id.to_string())
        .filter(portal_session::Column::CustomerId.eq(customer_id))
        .filter(portal_session::Column::EndedAt.is_null())
        .filter(portal_session::Column::ExpiresAt.gt(entity::now()))
        .one(db)
        .await?;
    Ok(open.is_some())
}

/// Ends the caller's portal session: its token stops working at once.
pub async fn sign_out(db: &DatabaseConnection, ctx: &RequestContext) -> AppResult<()> {
    let Viewer::Customer { customer_id } = &ctx.viewer else {
        return Err(AppError::Forbidden("only a customer's portal session can be signed out".into()));
    };
    let Some(session) = &ctx.session_id else { return Ok(()) };
    let txn = begin_write(db).await?;
    let ended = portal_session::Entity::update_many()
        .col_expr(portal_session::Column::EndedAt, Expr::value(entity::now()))
        .filter(portal_session::Column::Id.eq(session.as_str()))
        .filter(portal_session::Column::CustomerId.eq(customer_id.as_str()))
        .filter(portal_session::Column::EndedAt.is_null())
        .exec(&txn)
        .await?
        .rows_affected;
    if ended == 1 {
        audit::record(
            &txn,
            ctx,
            Change {
                action: "portal.signed_out",
                target_kind: "customer",
                target_id: customer_id,
                after: Some(serde_json::json!({ "session": session })),
                ..Change::default()
            },
        )
        .await?;
    }
    txn.commit().await?;
    Ok(())
}
