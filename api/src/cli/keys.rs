//! `keysmith keys import` and `keysmith keys export`: the pool admin's bulk
//! work from a shell, through the same services as the API.

use crate::AppState;
use crate::auth::RequestContext;
use crate::config::{Config, ExportFormatArg, FormatArg, KeysCommand};
use crate::services::export::{self, ExportFormat};
use crate::services::import::{self, DuplicatePolicy, ImportFormat, ImportOptions, ImportReport};
use crate::services::keys::{KeyFilter, TagRef};
use anyhow::{Context, bail};
use entity::{Environment, LicenseStatus, tag};
use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use sea_orm::{ColumnTrait, EntityTrait, Iterable, QueryFilter};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn environment(name: &str) -> anyhow::Result<Environment> {
    Environment::parse(name).context("--environment must be production or staging")
}

pub async fn run(config: Config, command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Import { file, tags, format, keep_duplicates, skip_invalid, environment: env } => {
            let ctx = RequestContext::system(environment(&env)?);
            let state = AppState::open(config).await?;
            let format = match format {
                Some(FormatArg::Csv) => ImportFormat::Csv,
                Some(FormatArg::Text) => ImportFormat::Text,
                None if file.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")) => ImportFormat::Csv,
                None => ImportFormat::Text,
            };
            let source = std::fs::File::open(&file).with_context(|| format!("cannot open {}", file.display()))?;
            let size = source.metadata().map(|m| m.len()).unwrap_or(0);
            let options = ImportOptions {
                format,
                tag_ids: Vec::new(),
                tag_names: tags,
                duplicates: if keep_duplicates { DuplicatePolicy::Keep } else { DuplicatePolicy::Skip },
                skip_invalid,
                size_hint: Some(size),
            };
            let progress = Arc::new(AtomicU64::new(0));
            let bar = ProgressBar::new(size);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} importing [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            let ticker = {
                let bar = bar.clone();
                let progress = progress.clone();
                tokio::spawn(async move {
                    loop {
                        bar.set_position(progress.load(Ordering::Relaxed));
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                })
            };
            let started = Instant::now();
            let result = import::import_as_job(&state.db, &state.jobs, &ctx, source, options, progress.clone()).await;
            ticker.abort();
            bar.finish_and_clear();
            let (report, _job) = result.map_err(|e| anyhow::anyhow!(e.detail()))?;
            print_report(&file.display().to_string(), &report, started.elapsed());
            if !report.committed {
                bail!(
                    "nothing was imported: {} invalid line(s); fix them or pass --skip-invalid",
                    report.invalid_count
                );
            }
            Ok(())
        }
        KeysCommand::Export { tag: tag_name, status, search, format, output, environment: env } => {
            let ctx = RequestContext::system(environment(&env)?);
            let state = AppState::open(config).await?;
            let tag = match tag_name.as_deref() {
                None => None,
                Some(tag::NO_TAG) => Some(TagRef::NoTag),
                Some(name) => {
                    let found = tag::Entity::find()
                        .filter(tag::Column::Environment.eq(ctx.environment))
                        .filter(tag::Column::Name.eq(name))
                        .one(&state.db)
                        .await?
                        .with_context(|| format!("no tag named {name} in {}", ctx.environment))?;
                    Some(TagRef::Tag(found.id))
                }
            };
            let status = status
                .map(|s| {
                    LicenseStatus::iter()
                        .find(|st| st.as_str().eq_ignore_ascii_case(&s))
                        .with_context(|| format!("{s} is not a licence status"))
                })
                .transpose()?;
            let filter = KeyFilter { tag, status, search, ids: None, ..KeyFilter::default() };
            let format = match format {
                ExportFormatArg::Csv => ExportFormat::Csv,
                ExportFormatArg::Json => ExportFormat::Json,
            };
            // A file is written beside its destination and put in place only
            // when the export is complete: a failed export leaves no partial
            // file, nor disturbs an earlier one of the same name.
            let mut file = match &output {
                Some(path) => {
                    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
                    Some(
                        tempfile::NamedTempFile::new_in(dir)
                            .with_context(|| format!("cannot write in {}", dir.display()))?,
                    )
                }
                None => None,
            };
            let mut out: Box<dyn Write + '_> = match &mut file {
                Some(file) => Box::new(std::io::BufWriter::new(file.as_file_mut())),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let mut stream = Box::pin(
                export::stream_as_job(state.db.clone(), &state.jobs, &ctx, &filter, format)
                    .await
                    .map_err(|e| anyhow::anyhow!(e.detail()))?,
            );
            let mut failure = None;
            while let Some(chunk) = stream.next().await {
                match chunk {
                    Ok(chunk) if failure.is_none() => out.write_all(&chunk)?,
                    Ok(_) => {}
                    // Read on to the stream's end, which records the job as failed.
                    Err(e) => failure = failure.or(Some(e.detail())),
                }
            }
            out.flush()?;
            drop(out);
            if let Some(reason) = failure {
                anyhow::bail!("the export stopped before the end ({reason}); nothing was written");
            }
            if let (Some(file), Some(path)) = (file, &output) {
                file.persist(path).with_context(|| format!("cannot create {}", path.display()))?;
            }
            Ok(())
        }
    }
}

fn print_report(file: &str, report: &ImportReport, took: Duration) {
    let seconds = took.as_secs_f64().max(0.001);
    println!(
        "{file}: {} line(s) with a key; imported {} in {:.1} s ({:.0} keys/s)",
        report.lines,
        report.imported,
        seconds,
        report.imported as f64 / seconds
    );
    println!(
        "duplicates skipped: {} within the file, {} already in the pool",
        report.duplicates_in_file, report.duplicates_in_pool
    );
    println!("invalid lines: {}", report.invalid_count);
    for line in &report.invalid_lines {
        println!("  line {}: {}", line.line, line.reason);
    }
    if report.invalid_count > report.invalid_lines.len() as u64 {
        println!("  … and {} more", report.invalid_count - report.invalid_lines.len() as u64);
    }
    for name in &report.created_tags {
        println!("created tag {name}");
    }
}
