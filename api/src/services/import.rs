//! Importing key lists into pools: pasted text, a CSV upload, or a file from
//! the command line. The list is streamed (a reader thread parses lines, the
//! importer inserts batches), so memory stays bounded however large the file,
//! and the whole import is one transaction: one invalid line imports nothing
//! unless invalid lines are to be skipped.

mod parse;

pub use parse::{ImportFormat, MAX_KEY_CHARS, MAX_LINE_BYTES};

use super::audit::{self, Change};
use super::bulk;
use super::jobs::{self, Attached, Runner};
use super::tags;
use crate::auth::{RequestContext, may};
use crate::db::begin_write;
use crate::error::{AppError, AppResult};
use entity::license_key::KeySource;
use entity::{license_key, product, tag};
use parse::{KeyLine, Line, parse_line, read_line_capped};
use sea_orm::{ColumnTrait, Condition, DatabaseConnection, DatabaseTransaction, EntityTrait, QueryFilter};
use std::collections::{HashMap, HashSet};
use std::io::{BufReader, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Lines parsed and inserted together. 2000 keys × 5 bound values stays well
/// under SQLite's bound-parameter limit (32766); PostgreSQL binds one array a column.
const BATCH: usize = 2000;
/// Invalid lines listed in a report; all are counted.
pub const MAX_REPORTED_INVALID: usize = 1000;
/// Activation limit of uploaded keys whose line does not give one.
pub const DEFAULT_ACTIVATION_LIMIT: i32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DuplicatePolicy {
    /// Skip keys already in the pool and repeats within the file.
    #[default]
    Skip,
    /// Import every line, duplicates included.
    Keep,
}

#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub format: ImportFormat,
    /// Existing tags every imported key gets.
    pub tag_ids: Vec<String>,
    /// Tags by name, created when missing (the command line's `--tag`).
    pub tag_names: Vec<String>,
    pub duplicates: DuplicatePolicy,
    pub skip_invalid: bool,
    /// The size of the source in bytes, when known: the duplicate set is then
    /// sized once instead of growing (and briefly doubling) as it fills.
    pub size_hint: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidLine {
    pub line: u64,
    pub reason: String,
}

/// What an import did — or, when `committed` is false, why it did nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Lines holding a key (blank lines and a CSV header not counted).
    pub lines: u64,
    pub imported: u64,
    pub duplicates_in_file: u64,
    pub duplicates_in_pool: u64,
    pub invalid_count: u64,
    /// The first invalid lines, by line number.
    pub invalid_lines: Vec<InvalidLine>,
    pub committed: bool,
    /// Tags the import created (named in the file or on the command line).
    pub created_tags: Vec<String>,
}

impl ImportReport {
    fn invalid(&mut self, line: u64, reason: String) {
        self.invalid_count += 1;
        if self.invalid_lines.len() < MAX_REPORTED_INVALID {
            self.invalid_lines.push(InvalidLine { line, reason });
        }
    }
}

/// Imports the key list `source` as an `IMPORT_LICENSE_KEYS` job, so it can
/// be followed in `jobs` while it runs and found there afterwards.
/// `progress` counts the bytes read so far.
pub async fn import_as_job(
    db: &DatabaseConnection,
    runner: &Arc<Runner>,
    ctx: &RequestContext,
    source: impl Read + Send + 'static,
    options: ImportOptions,
    progress: Arc<AtomicU64>,
) -> AppResult<(ImportReport, String)> {
    ctx.viewer.require(may::MANAGE)?;
    let payload = serde_json::json!({
        "format": format!("{:?}", options.format).to_uppercase(),
        "tagIds": options.tag_ids,
        "tagNames": options.tag_names,
        "skipInvalid": options.skip_invalid,
        "keepDuplicates": options.duplicates == DuplicatePolicy::Keep,
    });
    let total = options.size_hint.unwrap_or(0) as i64;
    let job = Attached::start(db, runner, ctx, jobs::IMPORT_LICENSE_KEYS, (progress.clone(), total), payload).await?;
    let id = job.id().to_string();
    let outcome = import(db, ctx, source, options, progress).await;
    let recorded = match &outcome {
        Ok(report) if report.committed => Ok(serde_json::json!({
            "imported": report.imported,
            "duplicatesInFile": report.duplicates_in_file,
            "duplicatesInPool": report.duplicates_in_pool,
            "invalid": report.invalid_count,
            "createdTags": report.created_tags,
        })),
        Ok(report) => Err(format!(
            "nothing was imported: {} invalid line(s), the first on line {}",
            report.invalid_count,
            report.invalid_lines.first().map(|l| l.line).unwrap_or_default()
        )),
        Err(e) => Err(e.client_message()),
    };
    job.finish(recorded).await?;
    Ok((outcome?, id))
}

/// Imports the key list `source`. `progress` counts the bytes read so far.
pub async fn import(
    db: &DatabaseConnection,
    ctx: &RequestContext,
    source: impl Read + Send + 'static,
    options: ImportOptions,
    progress: Arc<AtomicU64>,
) -> AppResult<ImportReport> {
    ctx.viewer.require(may::MANAGE)?;
    let txn = begin_write(db).await?;
    bulk::tune_for_load(&txn).await?;
    let mut importer = Importer::start(&txn, ctx, &options).await?;

    // Each batch travels with the number of bytes it took up in the source.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Vec<(u64, Line)>, u64)>(4);
    let format = options.format;
    let parser = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let mut reader = BufReader::with_capacity(256 * 1024, source);
        let mut buf = Vec::with_capacity(256);
        let mut number = 0u64;
        let mut batch = Vec::with_capacity(BATCH);
        let mut bytes = 0;
        while let Some((too_long, consumed)) = read_line_capped(&mut reader, &mut buf, MAX_LINE_BYTES)? {
            number += 1;
            bytes += consumed;
            progress.fetch_add(consumed, Ordering::Relaxed);
            batch.push((number, parse_line(format, number, &buf, too_long)));
            if batch.len() == BATCH
                && tx.blocking_send((std::mem::take(&mut batch), std::mem::take(&mut bytes))).is_err()
            {
                return Ok(());
            }
        }
        if !batch.is_empty() {
            tx.blocking_send((batch, bytes)).ok();
        }
        Ok(())
    });

    let mut first = true;
    while let Some((batch, bytes)) = rx.recv().await {
        if std::mem::take(&mut first) {
            importer.expect_lines(options.size_hint, batch.len(), bytes);
        }
        importer.batch(&txn, ctx, batch).await?;
    }
    parser
        .await
        .map_err(AppError::internal)?
        .map_err(|e| AppError::invalid("file", format!("could not be read: {e}")))?;

    let mut report = importer.report;
    if report.invalid_count > 0 && !options.skip_invalid {
        txn.rollback().await?;
        report.imported = 0;
        report.created_tags.clear();
        return Ok(report);
    }
    audit::record(
        &txn,
        ctx,
        Change {
            action: "license_keys.imported",
            target_kind: "tag",
            target_id: importer.targets.first().map(String::as_str).unwrap_or(tag::NO_TAG_ID),
            after: Some(serde_json::json!({
                "imported": report.imported,
                "duplicatesInFile": report.duplicates_in_file,
                "duplicatesInPool": report.duplicates_in_pool,
                "invalid": report.invalid_count,
                "tags": importer.targets,
            })),
            ..Change::default()
        },
    )
    .await?;
    txn.commit().await?;
    report.committed = true;
    bulk::refresh_statistics(db, report.imported).await;
    super::fulfilment::after_keys_arrived(db, ctx.environment).await;
    Ok(report)
}

struct Importer {
    report: ImportReport,
    targets: Vec<String>,
    skip_duplicates: bool,
    skip_invalid: bool,
    /// 128-bit hashes of the keys seen so far: 16 bytes a key, not the key itself.
    seen: HashSet<u128>,
    tag_ids: HashMap<String, String>,
    products: HashMap<String, Option<String>>,
    ids: ulid::Generator,
    /// Nothing was in the environment when the import began: then the file
    /// itself is the only source of duplicates and the database need not be
    /// asked. (On SQLite the import holds the write lock; on PostgreSQL a
    /// concurrent import's rows are invisible until it commits either way.)
    pool_was_empty: bool,
    now: chrono::DateTime<chrono::Utc>,
}

impl Importer {
    async fn start(txn: &DatabaseTransaction, ctx: &RequestContext, options: &ImportOptions) -> AppResult<Self> {
        let mut importer = Importer {
            report: ImportReport::default(),
            targets: Vec::new(),
            skip_duplicates: options.duplicates == DuplicatePolicy::Skip,
            skip_invalid: options.skip_invalid,
            seen: HashSet::new(),
            tag_ids: HashMap::new(),
            products: HashMap::new(),
            ids: ulid::Generator::new(),
            pool_was_empty: false,
            now: entity::now(),
        };
        for id in &options.tag_ids {
            let tag = tags::find_sellers_tag(txn, ctx, id, "tagIds").await?;
            importer.tag_ids.insert(tag.name.clone(), tag.id.clone());
            importer.targets.push(tag.id);
        }
        for name in &options.tag_names {
            let id = importer.tag_named(txn, ctx, name, "tag").await?;
            importer.targets.push(id);
        }
        importer.targets.dedup();
        importer.pool_was_empty = license_key::Entity::find()
            .filter(license_key::Column::Environment.eq(ctx.environment))
            .one(txn)
            .await?
            .is_none();
        Ok(importer)
    }

    /// The id of the tag `name`, created when it does not exist yet.
    async fn tag_named(
        &mut self,
        txn: &DatabaseTransaction,
        ctx: &RequestContext,
        name: &str,
        field: &str,
    ) -> AppResult<String> {
        if let Some(id) = self.tag_ids.get(name) {
            return Ok(id.clone());
        }
        let parsed = entity::values::TagName::parse(field, name)?;
        if tag::is_system_name(parsed.as_str()) {
            return Err(AppError::invalid(field, format!("'{name}' is a system tag")));
        }
        let existing = tag::Entity::find()
            .filter(tag::Column::Environment.eq(ctx.environment))
            .filter(tag::Column::Name.eq(name))
            .one(txn)
            .await?;
        let id = match existing {
            Some(t) => t.id,
            None => {
                self.report.created_tags.push(name.to_string());
                tags::insert(txn, ctx, name).await?.id
            }
        };
        self.tag_ids.insert(name.to_string(), id.clone());
        Ok(id)
    }

    /// The id of the product a line names (by id or exact name), if it exists here.
    async fn product(
        &mut self,
        txn: &DatabaseTransaction,
        ctx: &RequestContext,
        named: &str,
    ) -> AppResult<Option<String>> {
        if let Some(found) = self.products.get(named) {
            return Ok(found.clone());
        }
        let found = product::Entity::find()
            .filter(product::Column::Environment.eq(ctx.environment))
            .filter(Condition::any().add(product::Column::Id.eq(named)).add(product::Column::Name.eq(named)))
            .one(txn)
            .await?
            .map(|p| p.id);
        self.products.insert(named.to_string(), found.clone());
        Ok(found)
    }

    /// Sizes the duplicate set for the lines the source probably holds, judged
    /// from the first batch.
    fn expect_lines(&mut self, size_hint: Option<u64>, lines: usize, bytes: u64) {
        if let Some(total) = size_hint.filter(|_| self.skip_duplicates && bytes > 0) {
            let expected = (total as f64 * lines as f64 / bytes as f64 * 1.05) as usize;
            self.seen.reserve(expected.min(50_000_000));
        }
    }

    fn failing(&self) -> bool {
        self.report.invalid_count > 0 && !self.skip_invalid
    }

    async fn batch(
        &mut self,
        txn: &DatabaseTransaction,
        ctx: &RequestContext,
        batch: Vec<(u64, Line)>,
    ) -> AppResult<()> {
        let mut candidates: Vec<(KeyLine, Option<String>)> = Vec::with_capacity(batch.len());
        for (number, line) in batch {
            let key = match line {
                Line::Blank | Line::Header => continue,
                Line::Invalid(reason) => {
                    self.report.lines += 1;
                    self.report.invalid(number, reason);
                    continue;
                }
                Line::Key(key) => key,
            };
            self.report.lines += 1;
            let product_id = match &key.product {
                None => None,
                Some(named) => match self.product(txn, ctx, named).await? {
                    Some(id) => Some(id),
                    None => {
                        self.report.invalid(number, format!("product: no product {named:?} in this environment"));
                        continue;
                    }
                },
            };
            if self.skip_duplicates && !self.seen.insert(xxhash_rust::xxh3::xxh3_128(key.key.as_bytes())) {
                self.report.duplicates_in_file += 1;
                continue;
            }
            candidates.push((key, product_id));
        }
        if self.failing() || candidates.is_empty() {
            return Ok(());
        }
        if self.skip_duplicates && !self.pool_was_empty {
            let keys = candidates.iter().map(|(k, _)| k.key.as_str());
            let in_pool = bulk::already_in_pool(txn, ctx.environment, keys).await?;
            let before = candidates.len();
            candidates.retain(|(k, _)| !in_pool.contains(&k.key));
            self.report.duplicates_in_pool += (before - candidates.len()) as u64;
        }
        if candidates.is_empty() {
            return Ok(());
        }
        self.insert(txn, ctx, candidates).await
    }

    /// Inserts a batch and links it to its tags.
    async fn insert(
        &mut self,
        txn: &DatabaseTransaction,
        ctx: &RequestContext,
        rows: Vec<(KeyLine, Option<String>)>,
    ) -> AppResult<()> {
        let mut keys = Vec::with_capacity(rows.len());
        let mut links: HashMap<String, Vec<String>> = HashMap::new();
        for (line, product_id) in rows {
            let id = self.ids.generate().map(|u| u.to_string()).unwrap_or_else(|_| entity::new_id());
            for target in &self.targets {
                links.entry(target.clone()).or_default().push(id.clone());
            }
            for name in &line.tags {
                let tag_id = self.tag_named(txn, ctx, name, "tags").await?;
                if !self.targets.contains(&tag_id) {
                    links.entry(tag_id).or_default().push(id.clone());
                }
            }
            keys.push(bulk::NewKey {
                id,
                key: line.key,
                product_id,
                activation_limit: line.activation_limit.unwrap_or(DEFAULT_ACTIVATION_LIMIT),
                expires_at: line.expires_at,
            });
        }
        let common = bulk::Common {
            environment: ctx.environment,
            source: KeySource::Uploaded,
            generator_id: None,
            feature_flags: serde_json::json!({}),
            now: self.now,
        };
        self.report.imported += bulk::insert(txn, &common, &keys).await?;
        for (tag_id, key_ids) in links {
            bulk::tag(txn, &tag_id, &key_ids).await?;
        }
        Ok(())
    }
}
