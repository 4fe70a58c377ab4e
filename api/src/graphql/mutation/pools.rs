use crate::auth::may;
use crate::error::AppError;
use crate::graphql::guard::RoleGuard;
use crate::graphql::request;
use crate::graphql::types::pool::{
    CleanUpDuplicatesInput, CreateTagInput, DeleteLicenseKeysInput, DeleteTagInput, ImportLicenseKeysInput,
    ImportLicenseKeysPayload, KeysChangedPayload, MoveLicenseKeysInput, RenameTagInput, Tag, TagLicenseKeysInput,
    TagPayload, ids,
};
use crate::services::import::{self, ImportFormat, ImportOptions};
use crate::services::keys::{self, KeyFilter};
use crate::services::tags;
use async_graphql::{Context, Object, Result};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

#[derive(Default)]
pub struct PoolMutation;

#[Object]
impl PoolMutation {
    #[graphql(guard = "RoleGuard::new(may::MANAGE)")]
    async fn create_tag(&self, ctx: &Context<'_>, input: CreateTagInput) -> Result<TagPayload> {
        let (state, rc) = request(ctx)?;
        let created = tags::create(&state.db, rc, &input.name).await?;
        Ok(TagPayload { tag: Tag(tags::stats(&state.db, rc, &created.id).await?) })
    }

    #[graphql(guard = "RoleGuard::new(may::MANAGE)")]
    async fn rename_tag(&self, ctx: &Context<'_>, input: RenameTagInput) -> Result<TagPayload> {
        let (state, rc) = request(ctx)?;
        let renamed = tags::rename(&state.db, rc, &input.id, &input.name).await?;
        Ok(TagPayload { tag: Tag(tags::stats(&state.db, rc, &renamed.id).await?) })
    }

    /// Deletes a tag and every key in it.
    #[graphql(guard = "RoleGuard::new(may::MANAGE)")]
    async fn delete_tag(&self, ctx: &Context<'_>, input: DeleteTagInput) -> Result<KeysChangedPayload> {
        let (state, rc) = request(ctx)?;
        Ok(tags::delete(&state.db, rc, &input.id, input.force).await?.into())
    }

    /// Adds a tag to keys; keys may carry several tags.
    #[graphql(guard = "RoleGuard::new(may::MANAGE)")]
    async fn tag_license_keys(&self, ctx: &Context<'_>, input: TagLicenseKeysInput) -> Result<KeysChangedPayload> {
        let (state, rc) = request(ctx)?;
        let changed = keys::tag(&state.db, rc, &input.tag_id, &ids(input.key_ids)).await?;
        Ok(KeysChangedPayload::changed(changed))
    }

    #[graphql(guard = "RoleGuard::new(may::MANAGE)")]
    async fn untag_license_keys(&self, ctx: &Context<'_>, input: TagLicenseKeysInput) -> Result<KeysChangedPayload> {
        let (state, rc) = request(ctx)?;
        let changed = keys::untag(&state.db, rc, &input.tag_id, &ids(input.key_ids)).await?;
        Ok(KeysChangedPayload::changed(changed))
    }

    /// Moves keys between tags; customers keep the keys they have.
    #[graphql(guard = "RoleGuard::new(may::MANAGE)")]
    async fn move_license_keys(&self, ctx: &Context<'_>, input: MoveLicenseKeysInput) -> Result<KeysChangedPayload> {
        let (state, rc) = request(ctx)?;
        let key_ids = input.key_ids.map(ids);
        let moved = keys::move_keys(&state.db, rc, &input.from_tag_id, &input.to_tag_id, key_ids.as_deref()).await?;
        Ok(KeysChangedPayload::changed(moved))
    }

    /// Deletes keys by id or by filter. Customers lose access to deleted keys.
    #[graphql(guard = "RoleGuard::new(may::MANAGE)")]
    async fn delete_license_keys(
        &self,
        ctx: &Context<'_>,
        input: DeleteLicenseKeysInput,
    ) -> Result<KeysChangedPayload> {
        let (state, rc) = request(ctx)?;
        let filter = match (input.key_ids, input.filter) {
            (Some(key_ids), None) => KeyFilter { ids: Some(ids(key_ids)), ..KeyFilter::default() },
            (None, Some(filter)) => {
                let filter = filter.into_filter()?;
                if filter.tag.is_none()
                    && filter.ids.is_none()
                    && filter.status.is_none()
                    && filter.search.as_deref().is_none_or(|s| s.trim().is_empty())
                {
                    return Err(AppError::invalid("filter", "must name a tag, a status, a search or ids").into());
                }
                filter
            }
            _ => return Err(AppError::invalid("keyIds", "give either keyIds or filter").into()),
        };
        Ok(keys::delete(&state.db, rc, &filter, input.force).await?.into())
    }

    /// Uploads keys into pools from pasted text or a file. All or nothing:
    /// one invalid line imports nothing unless `skipInvalid` is set.
    #[graphql(guard = "RoleGuard::new(may::MANAGE)")]
    async fn import_license_keys(
        &self,
        ctx: &Context<'_>,
        input: ImportLicenseKeysInput,
    ) -> Result<ImportLicenseKeysPayload> {
        let (state, rc) = request(ctx)?;
        let options = |format: ImportFormat, size_hint: Option<u64>| ImportOptions {
            format,
            tag_ids: ids(input.tag_ids.clone()),
            tag_names: Vec::new(),
            duplicates: input.duplicates.into(),
            skip_invalid: input.skip_invalid,
            size_hint,
        };
        let progress = Arc::new(AtomicU64::new(0));
        let report = match (input.text, input.file) {
            (Some(text), None) => {
                let format = input.format.map(Into::into).unwrap_or(ImportFormat::Text);
                let size = Some(text.len() as u64);
                let source = std::io::Cursor::new(text.into_bytes());
                import::import_as_job(&state.db, &state.jobs, rc, source, options(format, size), progress).await?
            }
            (None, Some(upload)) => {
                let file =
                    upload.value(ctx).map_err(|e| AppError::invalid("file", format!("could not be read: {e}")))?;
                let format =
                    input.format.map(Into::into).unwrap_or(if file.filename.to_lowercase().ends_with(".csv") {
                        ImportFormat::Csv
                    } else {
                        ImportFormat::Text
                    });
                let size = file.content.metadata().ok().map(|m| m.len());
                import::import_as_job(&state.db, &state.jobs, rc, file.content, options(format, size), progress).await?
            }
            _ => return Err(AppError::invalid("text", "give either text or file").into()),
        };
        Ok(report.into())
    }

    /// Removes AVAILABLE duplicates from a pool, keeping the oldest copy of each key.
    #[graphql(guard = "RoleGuard::new(may::MANAGE)")]
    async fn clean_up_duplicates(
        &self,
        ctx: &Context<'_>,
        input: CleanUpDuplicatesInput,
    ) -> Result<KeysChangedPayload> {
        let (state, rc) = request(ctx)?;
        Ok(keys::clean_up_duplicates(&state.db, rc, &input.tag_id).await?.into())
    }
}
