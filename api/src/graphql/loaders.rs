//! DataLoaders for nested fields: whatever the page size, a page of keys with
//! their tags and orders costs one query per kind of nested field.

use crate::error::SharedError;
use crate::services::sql::{Sql, column_one_of, one_of};
use async_graphql::dataloader::{DataLoader, Loader};
use entity::{activation, customer, license_key, order, order_line, product};
use sea_orm::{ConnectionTrait, DatabaseConnection, EntityTrait, FromQueryResult, QueryFilter, QueryOrder};
use std::collections::HashMap;

/// A tag as a key lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagLink {
    pub id: String,
    pub name: String,
}

/// Licence key id → its tags, by name.
pub struct TagsOfKey(pub DatabaseConnection);

impl Loader<String> for TagsOfKey {
    type Value = Vec<TagLink>;
    type Error = SharedError;

    /// One statement: the keys' links joined to their tags, by name.
    async fn load(&self, keys: &[String]) -> Result<HashMap<String, Self::Value>, Self::Error> {
        let backend = self.0.get_database_backend();
        let mut sql = Sql::new(
            "SELECT lt.license_key_id AS ks_key, t.id AS ks_id, t.name AS ks_name \
             FROM license_key_tag lt JOIN tag t ON t.id = lt.tag_id WHERE ",
        );
        sql.append(&one_of(backend, "lt.license_key_id", keys)).push(" ORDER BY t.name, t.id", []);
        let mut out: HashMap<String, Vec<TagLink>> = HashMap::new();
        for row in self.0.query_all_raw(sql.statement(backend)).await.map_err(SharedError::from)? {
            let text = |column: &str| row.try_get::<String>("", column).map_err(SharedError::from);
            out.entry(text("ks_key")?).or_default().push(TagLink { id: text("ks_id")?, name: text("ks_name")? });
        }
        Ok(out)
    }
}

/// Order line id → the id of its order.
pub struct OrderOfLine(pub DatabaseConnection);

impl Loader<String> for OrderOfLine {
    type Value = String;
    type Error = SharedError;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, Self::Value>, Self::Error> {
        let backend = self.0.get_database_backend();
        Ok(order_line::Entity::find()
            .filter(column_one_of(backend, order_line::Column::Id, keys))
            .all(&self.0)
            .await
            .map_err(SharedError::from)?
            .into_iter()
            .map(|l| (l.id, l.order_id))
            .collect())
    }
}

/// Order id → its lines, oldest first.
pub struct LinesOfOrder(pub DatabaseConnection);

impl Loader<String> for LinesOfOrder {
    type Value = Vec<order_line::Model>;
    type Error = SharedError;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, Self::Value>, Self::Error> {
        let mut out: HashMap<String, Vec<order_line::Model>> = HashMap::new();
        let backend = self.0.get_database_backend();
        for line in order_line::Entity::find()
            .filter(column_one_of(backend, order_line::Column::OrderId, keys))
            .order_by_asc(order_line::Column::CreatedAt)
            .order_by_asc(order_line::Column::Id)
            .all(&self.0)
            .await
            .map_err(SharedError::from)?
        {
            out.entry(line.order_id.clone()).or_default().push(line);
        }
        Ok(out)
    }
}

/// Order line id → the keys delivered on it, oldest first.
pub struct KeysOfLine(pub DatabaseConnection);

impl Loader<String> for KeysOfLine {
    type Value = Vec<license_key::Model>;
    type Error = SharedError;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, Self::Value>, Self::Error> {
        let mut out: HashMap<String, Vec<license_key::Model>> = HashMap::new();
        let backend = self.0.get_database_backend();
        for key in license_key::Entity::find()
            .filter(column_one_of(backend, license_key::Column::OrderLineId, keys))
            .order_by_asc(license_key::Column::AssignedAt)
            .order_by_asc(license_key::Column::Id)
            .all(&self.0)
            .await
            .map_err(SharedError::from)?
        {
            if let Some(line) = key.order_line_id.clone() {
                out.entry(line).or_default().push(key);
            }
        }
        Ok(out)
    }
}

/// A table whose rows are loaded by their string id.
pub trait ById: EntityTrait {
    fn id_column() -> Self::Column;
    fn id_of(row: &Self::Model) -> String;
}

macro_rules! by_id {
    ($($entity:ident),*) => {
        $(impl ById for $entity::Entity {
            fn id_column() -> Self::Column {
                $entity::Column::Id
            }
            fn id_of(row: &Self::Model) -> String {
                row.id.clone()
            }
        })*
    };
}
by_id!(product, customer, order, license_key);

/// Id → row, for any table with a string id (products, customers, orders).
pub struct Rows<E>(pub DatabaseConnection, std::marker::PhantomData<E>);

impl<E> Rows<E> {
    pub fn new(db: &DatabaseConnection) -> Self {
        Self(db.clone(), std::marker::PhantomData)
    }
}

impl<E> Loader<String> for Rows<E>
where
    E: ById + Send + Sync + 'static,
    E::Model: Clone + Send + Sync + 'static,
{
    type Value = E::Model;
    type Error = SharedError;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, Self::Value>, Self::Error> {
        Ok(E::find()
            .filter(column_one_of(self.0.get_database_backend(), E::id_column(), keys))
            .all(&self.0)
            .await
            .map_err(SharedError::from)?
            .into_iter()
            .map(|row| (E::id_of(&row), row))
            .collect())
    }
}

/// Licence key id → its activations, newest first (ended ones included).
pub struct ActivationsOfKey(pub DatabaseConnection);

impl Loader<String> for ActivationsOfKey {
    type Value = Vec<activation::Model>;
    type Error = SharedError;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, Self::Value>, Self::Error> {
        let mut out: HashMap<String, Vec<activation::Model>> = HashMap::new();
        let backend = self.0.get_database_backend();
        for a in activation::Entity::find()
            .filter(column_one_of(backend, activation::Column::LicenseKeyId, keys))
            .order_by_desc(activation::Column::CreatedAt)
            .all(&self.0)
            .await
            .map_err(SharedError::from)?
        {
            out.entry(a.license_key_id.clone()).or_default().push(a);
        }
        Ok(out)
    }
}

/// The loaders of one request, made when a resolver first asks: client
/// calls (validation, activation) never need them, and are the hottest path.
pub struct RequestLoaders {
    db: DatabaseConnection,
    made: std::sync::OnceLock<Loaders>,
}

impl RequestLoaders {
    pub fn new(db: &DatabaseConnection) -> Self {
        Self { db: db.clone(), made: std::sync::OnceLock::new() }
    }

    pub fn get(&self) -> &Loaders {
        self.made.get_or_init(|| Loaders::new(&self.db))
    }
}

/// The loaders of one request (each caches for that request only).
pub struct Loaders {
    pub tags_of_key: DataLoader<TagsOfKey>,
    pub order_of_line: DataLoader<OrderOfLine>,
    pub products: DataLoader<Rows<product::Entity>>,
    pub customers: DataLoader<Rows<customer::Entity>>,
    pub activations_of_key: DataLoader<ActivationsOfKey>,
    pub orders: DataLoader<Rows<order::Entity>>,
    pub lines_of_order: DataLoader<LinesOfOrder>,
    pub keys_of_line: DataLoader<KeysOfLine>,
    pub keys: DataLoader<Rows<license_key::Entity>>,
}

impl Loaders {
    pub fn new(db: &DatabaseConnection) -> Self {
        // Long enough for every resolver of a page to ask before the batch
        // goes out (the default 1 ms splits batches on a busy node).
        let delay = std::time::Duration::from_millis(10);
        Self {
            tags_of_key: DataLoader::new(TagsOfKey(db.clone()), tokio::spawn).delay(delay),
            order_of_line: DataLoader::new(OrderOfLine(db.clone()), tokio::spawn).delay(delay),
            products: DataLoader::new(Rows::new(db), tokio::spawn).delay(delay),
            customers: DataLoader::new(Rows::new(db), tokio::spawn).delay(delay),
            activations_of_key: DataLoader::new(ActivationsOfKey(db.clone()), tokio::spawn).delay(delay),
            orders: DataLoader::new(Rows::new(db), tokio::spawn).delay(delay),
            lines_of_order: DataLoader::new(LinesOfOrder(db.clone()), tokio::spawn).delay(delay),
            keys_of_line: DataLoader::new(KeysOfLine(db.clone()), tokio::spawn).delay(delay),
            keys: DataLoader::new(Rows::new(db), tokio::spawn).delay(delay),
        }
    }
}

/// A page of licence keys' nested fields, read for the whole page as soon
/// as the page is listed. The loaders batch by time (what the resolvers ask
/// for within their delay), so a page whose resolvers take longer than that
/// on a busy node would split into several batches; a prefetch is one
/// statement per kind of field whatever the page size or the machine's load.
/// `None` for a field the query did not select (its loader serves it).
#[derive(Default)]
pub struct KeyPrefetch {
    pub tags: Option<HashMap<String, Vec<TagLink>>>,
    pub activations: Option<HashMap<String, Vec<activation::Model>>>,
    pub products: Option<HashMap<String, product::Model>>,
    pub customers: Option<HashMap<String, customer::Model>>,
    /// Order line id → order id.
    pub order_of_line: Option<HashMap<String, String>>,
    pub orders: Option<HashMap<String, order::Model>>,
}

/// Which nested fields of a key a query selects.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeyFields {
    pub tags: bool,
    pub activations: bool,
    pub product: bool,
    pub customer: bool,
    pub order_id: bool,
    pub order: bool,
}

impl KeyFields {
    /// The nested fields `key` (a `LicenseKey` in the query) selects.
    pub fn selected(key: &async_graphql::Lookahead<'_>) -> Self {
        KeyFields {
            tags: key.field("tags").exists(),
            activations: key.field("activations").exists() || key.field("activationsUsed").exists(),
            product: key.field("product").exists(),
            customer: key.field("customer").exists(),
            order_id: key.field("orderId").exists(),
            order: key.field("order").exists(),
        }
    }
}

/// Loads `ids` (deduplicated) when `wanted`; an empty map when there are none.
async fn prefetched<L>(
    wanted: bool,
    loader: L,
    mut ids: Vec<String>,
) -> Result<Option<HashMap<String, L::Value>>, SharedError>
where
    L: Loader<String, Error = SharedError>,
{
    if !wanted {
        return Ok(None);
    }
    ids.sort();
    ids.dedup();
    if ids.is_empty() {
        return Ok(Some(HashMap::new()));
    }
    loader.load(&ids).await.map(Some)
}

impl KeyPrefetch {
    pub async fn load(
        db: &DatabaseConnection,
        keys: &[license_key::Model],
        fields: KeyFields,
    ) -> Result<Self, SharedError> {
        let ids: Vec<String> = keys.iter().map(|k| k.id.clone()).collect();
        let of = |f: fn(&license_key::Model) -> Option<&String>| -> Vec<String> {
            keys.iter().filter_map(f).cloned().collect()
        };
        let (tags, activations, products, customers, (order_of_line, orders)) = tokio::try_join!(
            prefetched(fields.tags, TagsOfKey(db.clone()), ids.clone()),
            prefetched(fields.activations, ActivationsOfKey(db.clone()), ids.clone()),
            prefetched(fields.product, Rows::<product::Entity>::new(db), of(|k| k.product_id.as_ref())),
            prefetched(fields.customer, Rows::<customer::Entity>::new(db), of(|k| k.customer_id.as_ref())),
            orders_of_lines(db, fields, of(|k| k.order_line_id.as_ref())),
        )?;
        Ok(Self { tags, activations, products, customers, order_of_line, orders })
    }
}

/// Order line id → order id, and (when the orders are wanted) order id →
/// order, in one statement: the lines joined to their orders.
async fn orders_of_lines(
    db: &DatabaseConnection,
    fields: KeyFields,
    mut lines: Vec<String>,
) -> Result<(Option<HashMap<String, String>>, Option<HashMap<String, order::Model>>), SharedError> {
    if !fields.order {
        return Ok((prefetched(fields.order_id, OrderOfLine(db.clone()), lines).await?, None));
    }
    let (mut of_line, mut orders) = (HashMap::new(), HashMap::new());
    lines.sort();
    lines.dedup();
    if !lines.is_empty() {
        let backend = db.get_database_backend();
        let mut sql =
            Sql::new("SELECT l.id AS ks_line, o.* FROM order_line l JOIN orders o ON o.id = l.order_id WHERE ");
        sql.append(&one_of(backend, "l.id", &lines));
        for row in db.query_all_raw(sql.statement(backend)).await.map_err(SharedError::from)? {
            let order = order::Model::from_query_result(&row, "").map_err(SharedError::from)?;
            of_line.insert(row.try_get::<String>("", "ks_line").map_err(SharedError::from)?, order.id.clone());
            orders.insert(order.id.clone(), order);
        }
    }
    Ok((Some(of_line), Some(orders)))
}

/// The value for `key`: from the page's prefetch when it read this kind of
/// field, else through the loader.
pub async fn primed_or_loaded<L>(
    primed: Option<&HashMap<String, L::Value>>,
    loader: &DataLoader<L>,
    key: &str,
) -> Result<Option<L::Value>, SharedError>
where
    L: Loader<String, Error = SharedError>,
    L::Value: Clone,
{
    match primed {
        Some(map) => Ok(map.get(key).cloned()),
        None => loader.load_one(key.to_string()).await,
    }
}
