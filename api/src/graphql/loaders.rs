//! DataLoaders for nested fields: whatever the page size, a page of keys with
//! their tags and orders costs one query per kind of nested field.

use crate::error::SharedError;
use async_graphql::dataloader::{DataLoader, Loader};
use entity::{license_key_tag, order_line, tag};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};
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

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, Self::Value>, Self::Error> {
        let links = license_key_tag::Entity::find()
            .filter(license_key_tag::Column::LicenseKeyId.is_in(keys.iter().cloned()))
            .all(&self.0)
            .await
            .map_err(SharedError::from)?;
        let tag_ids: Vec<String> = links.iter().map(|l| l.tag_id.clone()).collect();
        let names: HashMap<String, String> = tag::Entity::find()
            .filter(tag::Column::Id.is_in(tag_ids))
            .order_by_asc(tag::Column::Name)
            .all(&self.0)
            .await
            .map_err(SharedError::from)?
            .into_iter()
            .map(|t| (t.id, t.name))
            .collect();
        let mut out: HashMap<String, Vec<TagLink>> = HashMap::new();
        for link in links {
            if let Some(name) = names.get(&link.tag_id) {
                out.entry(link.license_key_id).or_default().push(TagLink { id: link.tag_id, name: name.clone() });
            }
        }
        for tags in out.values_mut() {
            tags.sort_by(|a, b| a.name.cmp(&b.name));
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
        Ok(order_line::Entity::find()
            .filter(order_line::Column::Id.is_in(keys.iter().cloned()))
            .all(&self.0)
            .await
            .map_err(SharedError::from)?
            .into_iter()
            .map(|l| (l.id, l.order_id))
            .collect())
    }
}

/// The loaders of one request (each caches for that request only).
pub struct Loaders {
    pub tags_of_key: DataLoader<TagsOfKey>,
    pub order_of_line: DataLoader<OrderOfLine>,
}

impl Loaders {
    pub fn new(db: &DatabaseConnection) -> Self {
        Self {
            tags_of_key: DataLoader::new(TagsOfKey(db.clone()), tokio::spawn),
            order_of_line: DataLoader::new(OrderOfLine(db.clone()), tokio::spawn),
        }
    }
}
