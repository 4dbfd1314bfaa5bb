//! `kharness report diff BASE NEW`: reads two reports, prints what changed,
//! exits 1 when something regressed. The comparison is in `kharness_matrix::report_diff`.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use kharness_matrix::report_diff as diff;

use crate::{CliError, ExitCode};

/// Output format of the diff.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum DiffFormat {
    /// Plain text, a section per kind of change.
    Human,
    /// Markdown, for a pull-request comment.
    Markdown,
    /// One JSON document.
    Json,
}

/// `kharness report diff`.
#[derive(Args, Debug, Clone)]
pub struct DiffArgs {
    /// The base report: the last good run (`kharness run --format json`) or
    /// matrix (`kharness matrix --format json`, `report merge --format json`).
    base: PathBuf,
    /// The new report, of the same kind.
    new: PathBuf,
    /// Output format on stdout.
    #[arg(long, value_enum, default_value_t = DiffFormat::Human)]
    format: DiffFormat,
}

fn read(p: &Path) -> Result<diff::Side, CliError> {
    let text = std::fs::read_to_string(p).map_err(|e| {
        CliError::Usage(format!(
            "cannot read {}: {e}; give a report written by `kharness run --format json` or `kharness matrix --format json`",
            p.display()
        ))
    })?;
    diff::load(&text).map_err(|e| CliError::Usage(format!("{}: {e}", p.display())))
}

/// Runs the diff: exit 1 on a regression, 0 otherwise.
pub fn run(args: DiffArgs) -> Result<ExitCode, CliError> {
    let base = read(&args.base)?;
    let new = read(&args.new)?;
    if base.kind != new.kind {
        return Err(CliError::Usage(format!(
            "{} is a {} and {} a {}; compare two reports of the same kind",
            args.base.display(),
            base.kind,
            args.new.display(),
            new.kind
        )));
    }
    let d = diff::diff(
        &base,
        &new,
        &args.base.display().to_string(),
        &args.new.display().to_string(),
    );
    let text = match args.format {
        DiffFormat::Human => diff::text(&d),
        DiffFormat::Markdown => diff::markdown(&d),
        DiffFormat::Json => serde_json::to_string_pretty(&d).expect("diff serialises") + "\n",
    };
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    Ok(if d.has_regression() {
        ExitCode::CaseFailed
    } else {
        ExitCode::Ok
    })
}
