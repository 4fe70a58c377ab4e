//! Tags (pools) and licence keys as clients see them, and the inputs that manage them.

use super::common::{ListConnection, OrderDirection};
use crate::auth::may;
use crate::error::AppError;
use crate::graphql::guard::RoleGuard;
use crate::graphql::loaders::{KeyFields, KeyPrefetch, Loaders, RequestLoaders, primed_or_loaded};
use crate::graphql::request;
use crate::graphql::types::common::connection;
use crate::graphql::types::customer::Customer;
use crate::graphql::types::order::Order;
use crate::graphql::types::product::Product;
use crate::services::keys::{
    self, KeyFilter, KeyOrder as ServiceKeyOrder, KeyOrderField as ServiceKeyOrderField, Removal, TagRef,
};
use crate::services::pagination::PageArgs;
use crate::services::tags::TagStats;
use async_graphql::{ComplexObject, Context, Enum, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use entity::license_key::Model as KeyModel;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "entity::LicenseStatus")]
pub enum LicenseStatus {
    Available,
    Assigned,
    Active,
    Inactive,
    Suspended,
    Expired,
    Revoked,
}

/// Where a key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "entity::license_key::KeySource")]
pub enum KeySource {
    Uploaded,
    Generated,
    Manual,
}

/// A pool of keys with its figures. `auto-generated` and `no tag` are system tags.
pub struct Tag(pub TagStats);

#[Object]
impl Tag {
    /// `no-tag` for the keys without any tag.
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// System tags cannot be renamed or deleted.
    async fn system(&self) -> bool {
        self.0.system
    }
    /// All keys in the pool.
    async fn total(&self) -> i64 {
        self.0.total
    }
    /// Keys waiting to be delivered (AVAILABLE).
    async fn remaining(&self) -> i64 {
        self.0.remaining
    }
    /// Keys delivered to a customer and not yet used (ASSIGNED).
    async fn assigned(&self) -> i64 {
        self.0.assigned
    }
    /// Keys in use or retired (every other status).
    async fn used(&self) -> i64 {
        self.0.used()
    }
    /// The share of the pool no longer available (assigned or used), 0–100, one decimal.
    async fn used_percentage(&self) -> f64 {
        self.0.used_percentage()
    }
    async fn created_at(&self) -> Option<DateTime<Utc>> {
        self.0.created_at
    }
    /// The pool's keys, newest first unless `orderBy` says otherwise.
    #[graphql(complexity = "5 + first.unwrap_or(20).max(0) as usize * child_complexity")]
    async fn keys(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        filter: Option<PoolKeyFilter>,
        order_by: Option<LicenseKeyOrder>,
    ) -> Result<ListConnection<LicenseKey>> {
        let filter = filter.unwrap_or_default();
        let filter = KeyFilter {
            tag: Some(TagRef::parse(&self.0.id)),
            status: filter.status.map(Into::into),
            search: filter.search,
            ..KeyFilter::default()
        };
        list_keys(ctx, first, after, filter, order_by).await
    }
}

pub(crate) async fn list_keys(
    ctx: &Context<'_>,
    first: Option<i32>,
    after: Option<String>,
    filter: KeyFilter,
    order_by: Option<LicenseKeyOrder>,
) -> Result<ListConnection<LicenseKey>> {
    let (state, rc) = request(ctx)?;
    let args = PageArgs::parse(first, after)?;
    let order = order_by
        .map(Into::into)
        .unwrap_or(ServiceKeyOrder { field: ServiceKeyOrderField::CreatedAt, descending: true });
    let want_total = ctx.look_ahead().field("totalCount").exists();
    let page = keys::list(&state.db, rc, &filter, order, &args, want_total).await?;
    let fields = KeyFields::selected(&ctx.look_ahead().field("edges").field("node"));
    let rows: Vec<KeyModel> = page.items.iter().map(|(_, key)| key.clone()).collect();
    let prefetch = Arc::new(KeyPrefetch::load(&state.db, &rows, fields).await?);
    Ok(connection(page, |key| LicenseKey(key, Some(prefetch.clone()))))
}

pub(crate) fn loaders<'a>(ctx: &Context<'a>) -> Result<&'a Loaders> {
    Ok(ctx.data::<RequestLoaders>().map_err(|_| AppError::internal("no loaders in the request"))?.get())
}

/// A licence named by another row (a renewal's), in the request's
/// environment, through the request's loader: one statement for a page.
pub(crate) async fn licence_named(ctx: &Context<'_>, id: &str) -> Result<Option<KeyModel>> {
    let (_, rc) = request(ctx)?;
    let found = loaders(ctx)?.keys.load_one(id.to_string()).await?;
    Ok(found.filter(|k| k.environment == rc.environment))
}

/// One device using a licence.
#[derive(Debug, SimpleObject)]
#[graphql(complex)]
pub struct Activation {
    pub id: ID,
    /// The licence the device uses.
    pub license_id: ID,
    pub fingerprint: String,
    pub name: Option<String>,
    pub platform: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub deactivated_at: Option<DateTime<Utc>>,
}

#[ComplexObject]
impl Activation {
    /// The licence the device uses, with its product and customer (staff).
    #[graphql(guard = "RoleGuard::new(may::READ)")]
    async fn license(&self, ctx: &Context<'_>) -> Result<Option<LicenseKey>> {
        Ok(loaders(ctx)?.keys.load_one(self.license_id.to_string()).await?.map(LicenseKey::from))
    }
}

impl From<entity::activation::Model> for Activation {
    fn from(a: entity::activation::Model) -> Self {
        Self {
            id: ID(a.id),
            license_id: ID(a.license_key_id),
            fingerprint: a.fingerprint,
            name: a.name,
            platform: a.platform,
            created_at: a.created_at,
            last_seen_at: a.last_seen_at,
            deactivated_at: a.deactivated_at,
        }
    }
}

/// A tag as a key lists it.
#[derive(Debug, SimpleObject)]
pub struct TagLink {
    pub id: ID,
    pub name: String,
}

/// A licence key, with its page's prefetched nested fields when it was listed.
pub struct LicenseKey(pub KeyModel, pub Option<Arc<KeyPrefetch>>);

impl From<KeyModel> for LicenseKey {
    fn from(key: KeyModel) -> Self {
        Self(key, None)
    }
}

impl LicenseKey {
    fn primed(&self) -> Option<&KeyPrefetch> {
        self.1.as_deref()
    }

    async fn devices(&self, ctx: &Context<'_>) -> Result<Vec<entity::activation::Model>> {
        let primed = self.primed().and_then(|p| p.activations.as_ref());
        Ok(primed_or_loaded(primed, &loaders(ctx)?.activations_of_key, &self.0.id).await?.unwrap_or_default())
    }
}

#[Object]
impl LicenseKey {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    /// The key string itself.
    #[graphql(guard = "RoleGuard::new(may::READ)")]
    async fn key(&self) -> &str {
        &self.0.key
    }
    /// Uploaded, generated or entered by hand.
    #[graphql(name = "type")]
    async fn source(&self) -> KeySource {
        self.0.source.into()
    }
    async fn status(&self) -> LicenseStatus {
        self.0.status.into()
    }
    /// The tags the key carries, by name.
    async fn tags(&self, ctx: &Context<'_>) -> Result<Vec<TagLink>> {
        let primed = self.primed().and_then(|p| p.tags.as_ref());
        let tags = primed_or_loaded(primed, &loaders(ctx)?.tags_of_key, &self.0.id).await?.unwrap_or_default();
        Ok(tags.into_iter().map(|t| TagLink { id: ID(t.id), name: t.name }).collect())
    }
    /// The id of the order the key was delivered with.
    async fn order_id(&self, ctx: &Context<'_>) -> Result<Option<ID>> {
        let Some(line) = &self.0.order_line_id else {
            return Ok(None);
        };
        let primed = self.primed().and_then(|p| p.order_of_line.as_ref());
        Ok(primed_or_loaded(primed, &loaders(ctx)?.order_of_line, line).await?.map(ID))
    }
    /// The expired licence this one was delivered to replace, on a renewal order line.
    async fn renewed_from(&self, ctx: &Context<'_>) -> Result<Option<LicenseKey>> {
        let Some(id) = &self.0.renewed_from_id else {
            return Ok(None);
        };
        Ok(licence_named(ctx, id).await?.map(LicenseKey::from))
    }
    /// The order the key was delivered with.
    async fn order(&self, ctx: &Context<'_>) -> Result<Option<Order>> {
        let Some(line) = &self.0.order_line_id else {
            return Ok(None);
        };
        let loaders = loaders(ctx)?;
        let primed = self.primed().and_then(|p| p.order_of_line.as_ref());
        let Some(order_id) = primed_or_loaded(primed, &loaders.order_of_line, line).await? else {
            return Ok(None);
        };
        let primed = self.primed().and_then(|p| p.orders.as_ref());
        Ok(primed_or_loaded(primed, &loaders.orders, &order_id).await?.map(Order::from))
    }
    async fn product_id(&self) -> Option<ID> {
        self.0.product_id.clone().map(ID)
    }
    async fn customer_id(&self) -> Option<ID> {
        self.0.customer_id.clone().map(ID)
    }
    async fn product(&self, ctx: &Context<'_>) -> Result<Option<Product>> {
        let Some(id) = &self.0.product_id else {
            return Ok(None);
        };
        let primed = self.primed().and_then(|p| p.products.as_ref());
        Ok(primed_or_loaded(primed, &loaders(ctx)?.products, id).await?.map(Product))
    }
    #[graphql(guard = "RoleGuard::new(may::READ)")]
    async fn customer(&self, ctx: &Context<'_>) -> Result<Option<Customer>> {
        let Some(id) = &self.0.customer_id else {
            return Ok(None);
        };
        let primed = self.primed().and_then(|p| p.customers.as_ref());
        Ok(primed_or_loaded(primed, &loaders(ctx)?.customers, id).await?.map(Customer))
    }
    /// Devices using the licence, newest first; ended ones keep `deactivatedAt`.
    async fn activations(&self, ctx: &Context<'_>) -> Result<Vec<Activation>> {
        Ok(self.devices(ctx).await?.into_iter().map(Activation::from).collect())
    }
    /// Activations still in use.
    async fn activations_used(&self, ctx: &Context<'_>) -> Result<i64> {
        Ok(self.devices(ctx).await?.iter().filter(|a| a.deactivated_at.is_none()).count() as i64)
    }
    async fn generator_id(&self) -> Option<ID> {
        self.0.generator_id.clone().map(ID)
    }
    async fn feature_flags(&self) -> async_graphql::Json<serde_json::Value> {
        async_graphql::Json(self.0.feature_flags.clone())
    }
    /// The seller's own notes; staff only.
    #[graphql(guard = "RoleGuard::new(may::READ)")]
    async fn metadata(&self) -> async_graphql::Json<serde_json::Value> {
        async_graphql::Json(self.0.metadata.clone())
    }
    async fn assigned_at(&self) -> Option<DateTime<Utc>> {
        self.0.assigned_at
    }
    async fn activated_at(&self) -> Option<DateTime<Utc>> {
        self.0.activated_at
    }
    async fn revoked_at(&self) -> Option<DateTime<Utc>> {
        self.0.revoked_at
    }
    /// `-1` for unlimited.
    async fn activation_limit(&self) -> i32 {
        self.0.activation_limit
    }
    /// Null for a lifetime licence.
    async fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.expires_at
    }
    /// When the key was uploaded or created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

#[derive(Debug, Default, InputObject)]
pub struct PoolKeyFilter {
    pub status: Option<LicenseStatus>,
    /// Any part of the key (3 characters or more), or its beginning (fewer);
    /// at most 256 characters, every character taken literally.
    pub search: Option<String>,
}

#[derive(Debug, Default, InputObject)]
pub struct LicenseKeyFilter {
    /// A tag's id, or `no-tag` for keys without any tag.
    pub tag_id: Option<ID>,
    pub product_id: Option<ID>,
    pub customer_id: Option<ID>,
    /// Keys whose expiry falls before this moment (lifetime keys never do).
    pub expiring_before: Option<DateTime<Utc>>,
    pub status: Option<LicenseStatus>,
    /// Any part of the key, the customer's email or name, or the product's name
    /// (3 characters or more), or their beginning (fewer); case-insensitive; at
    /// most 256 characters, every character taken literally.
    pub search: Option<String>,
    /// These keys only: between 1 and 1000 ids (e.g. the rows a list showed,
    /// to read them again before a bulk action). Ids of other environments
    /// match nothing.
    pub ids: Option<Vec<ID>>,
}

impl LicenseKeyFilter {
    /// The filter as the services take it; `filter.ids` is checked here.
    pub fn into_filter(self) -> Result<KeyFilter, AppError> {
        if let Some(given) = &self.ids {
            let distinct: std::collections::BTreeSet<&str> = given.iter().map(|id| id.as_str()).collect();
            if distinct.is_empty() || distinct.len() > keys::MAX_IDS {
                return Err(AppError::invalid(
                    "filter.ids",
                    format!("must name between 1 and {} keys (got {})", keys::MAX_IDS, distinct.len()),
                ));
            }
        }
        Ok(KeyFilter {
            tag: self.tag_id.map(|id| TagRef::parse(&id)),
            status: self.status.map(Into::into),
            search: self.search,
            ids: self.ids.map(ids),
            product_id: self.product_id.map(|id| id.0),
            customer_id: self.customer_id.map(|id| id.0),
            expiring_before: self.expiring_before,
            deliverable_to: None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum LicenseKeyOrderField {
    Key,
    /// When the key was uploaded or created.
    CreatedAt,
    /// The product's name; keys without a product first.
    Product,
    /// The customer's name (their email when the name is empty); keys without a customer first.
    Customer,
    /// Lifecycle order: available, assigned, active, inactive, suspended, expired, revoked.
    Status,
    /// Unlimited (`-1`) counts as the largest.
    ActivationLimit,
    /// Lifetime keys count as expiring last.
    ExpiresAt,
}

#[derive(Debug, InputObject)]
pub struct LicenseKeyOrder {
    pub field: LicenseKeyOrderField,
    #[graphql(default)]
    pub direction: OrderDirection,
}

impl From<LicenseKeyOrder> for ServiceKeyOrder {
    fn from(o: LicenseKeyOrder) -> Self {
        ServiceKeyOrder {
            field: match o.field {
                LicenseKeyOrderField::Key => ServiceKeyOrderField::Key,
                LicenseKeyOrderField::CreatedAt => ServiceKeyOrderField::CreatedAt,
                LicenseKeyOrderField::Product => ServiceKeyOrderField::Product,
                LicenseKeyOrderField::Customer => ServiceKeyOrderField::Customer,
                LicenseKeyOrderField::Status => ServiceKeyOrderField::Status,
                LicenseKeyOrderField::ActivationLimit => ServiceKeyOrderField::ActivationLimit,
                LicenseKeyOrderField::ExpiresAt => ServiceKeyOrderField::Expiry,
            },
            descending: o.direction.descending(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum TagOrderField {
    Name,
    Remaining,
}

#[derive(Debug, InputObject)]
pub struct TagOrder {
    pub field: TagOrderField,
    #[graphql(default)]
    pub direction: OrderDirection,
}

#[derive(Debug, InputObject)]
pub struct CreateTagInput {
    /// Lowercase letters, digits and `-`, starting with a letter, at most 64 characters.
    pub name: String,
}

#[derive(Debug, InputObject)]
pub struct RenameTagInput {
    pub id: ID,
    /// The rule of `createTag`: at most 64 characters.
    pub name: String,
}

#[derive(Debug, InputObject)]
pub struct DeleteTagInput {
    pub id: ID,
    /// Needed when some of the tag's keys were ever activated.
    #[graphql(default)]
    pub force: bool,
}

#[derive(Debug, InputObject)]
pub struct TagLicenseKeysInput {
    pub tag_id: ID,
    /// At most 1000.
    pub key_ids: Vec<ID>,
}

#[derive(Debug, InputObject)]
pub struct MoveLicenseKeysInput {
    /// A tag's id, or `no-tag`.
    pub from_tag_id: ID,
    /// An existing tag of the seller's.
    pub to_tag_id: ID,
    /// The keys to move (at most 1000); every key of the source tag when omitted.
    pub key_ids: Option<Vec<ID>>,
}

#[derive(Debug, InputObject)]
pub struct DeleteLicenseKeysInput {
    /// The keys to delete (at most 1000). Give this or `filter`.
    pub key_ids: Option<Vec<ID>>,
    /// Every key matching; it must name a tag, a status, a search or ids.
    pub filter: Option<LicenseKeyFilter>,
    /// Needed when some of the keys were ever activated.
    #[graphql(default)]
    pub force: bool,
}

#[derive(Debug, InputObject)]
pub struct CleanUpDuplicatesInput {
    /// A tag's id, or `no-tag`.
    pub tag_id: ID,
}

#[derive(SimpleObject)]
pub struct TagPayload {
    pub tag: Tag,
}

/// What a bulk change did.
#[derive(Debug, SimpleObject)]
pub struct KeysChangedPayload {
    /// Keys deleted, moved, tagged or untagged.
    pub keys_changed: u64,
    /// Customer orders that lost access to a key.
    pub orders_affected: u64,
}

impl From<Removal> for KeysChangedPayload {
    fn from(r: Removal) -> Self {
        Self { keys_changed: r.keys, orders_affected: r.orders_affected }
    }
}

impl KeysChangedPayload {
    pub fn changed(keys: u64) -> Self {
        Self { keys_changed: keys, orders_affected: 0 }
    }
}

impl std::fmt::Debug for Tag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Tag").field(&self.0.id).finish()
    }
}

impl std::fmt::Debug for LicenseKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("LicenseKey").field(&self.0.id).finish()
    }
}

pub fn ids(ids: Vec<ID>) -> Vec<String> {
    ids.into_iter().map(|id| id.0).collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(remote = "crate::services::import::ImportFormat")]
pub enum ImportFormat {
    /// One key per line.
    Text,
    /// `key,tags,product,expiry,activationLimit` (only the key is required; tags
    /// separated by `;` or `|`; an optional header line starting with `key`).
    Csv,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Enum)]
#[graphql(remote = "crate::services::import::DuplicatePolicy")]
pub enum DuplicatePolicy {
    /// Skip keys already in the environment and repeats within the list.
    #[default]
    Skip,
    /// Import every line.
    Keep,
}

#[derive(InputObject)]
pub struct ImportLicenseKeysInput {
    /// Pasted keys. Give this or `file`. Bounded by the request size (1 MiB
    /// unless the server says otherwise); each key at most 256 characters.
    pub text: Option<String>,
    /// A file sent as a GraphQL multipart upload.
    pub file: Option<async_graphql::Upload>,
    /// `TEXT` for pasted text; for files, `CSV` when the name ends in `.csv`, else `TEXT`.
    pub format: Option<ImportFormat>,
    /// Tags every imported key gets.
    #[graphql(default)]
    pub tag_ids: Vec<ID>,
    #[graphql(default)]
    pub duplicates: DuplicatePolicy,
    /// Import the valid lines even when some are invalid (otherwise nothing is imported).
    #[graphql(default)]
    pub skip_invalid: bool,
}

#[derive(Debug, SimpleObject)]
pub struct InvalidLine {
    /// Counted from 1, blank lines included.
    pub line: u64,
    pub reason: String,
}

#[derive(Debug, SimpleObject)]
pub struct ImportLicenseKeysPayload {
    /// False when invalid lines stopped the import: then nothing was imported.
    pub committed: bool,
    /// Lines holding a key.
    pub lines: u64,
    pub imported: u64,
    pub duplicates_in_file: u64,
    pub duplicates_in_pool: u64,
    pub invalid_count: u64,
    /// The first 1000 invalid lines.
    pub invalid_lines: Vec<InvalidLine>,
    pub created_tags: Vec<String>,
    /// The `IMPORT_LICENSE_KEYS` job that recorded this import.
    pub job_id: ID,
}

impl From<(crate::services::import::ImportReport, String)> for ImportLicenseKeysPayload {
    fn from((r, job_id): (crate::services::import::ImportReport, String)) -> Self {
        Self {
            job_id: ID(job_id),
            committed: r.committed,
            lines: r.lines,
            imported: r.imported,
            duplicates_in_file: r.duplicates_in_file,
            duplicates_in_pool: r.duplicates_in_pool,
            invalid_count: r.invalid_count,
            invalid_lines: r
                .invalid_lines
                .into_iter()
                .map(|l| InvalidLine { line: l.line, reason: l.reason })
                .collect(),
            created_tags: r.created_tags,
        }
    }
}
