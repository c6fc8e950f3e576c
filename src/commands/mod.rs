//! The CLI subcommands, one module each; `src/main.rs` parses arguments and
//! calls these.
pub mod compare;
pub mod data_check;
pub mod eval;
pub mod finetune;
pub mod models;
pub mod retrieval;
pub mod run;

/// Runs `f` on a rayon pool of `jobs` threads (all cores when `None`).
pub fn with_jobs<T: Send>(jobs: Option<usize>, f: impl FnOnce() -> T + Send) -> anyhow::Result<T> {
    let mut builder = rayon::ThreadPoolBuilder::new().stack_size(16 << 20);
    if let Some(n) = jobs {
        builder = builder.num_threads(n.max(1));
    }
    Ok(builder.build()?.install(f))
}

/// How a comparison table computes its statistics (`run`, `report`,
/// `eval --pred NAME=FILE ...`).
#[derive(Debug, Clone, clap::Args)]
pub struct TableArgs {
    /// The row every other row is compared with: a row's label or a
    /// strategy name (default: the first row).
    #[arg(long, value_name = "NAME")]
    pub baseline: Option<String>,
    /// Cluster the standard errors by database (Miller 2024, "Adding Error
    /// Bars to Evals"): Spider's questions come 20 to 200 per database, and
    /// questions of one database succeed or fail together.
    #[arg(long, value_enum, value_name = "BY")]
    pub cluster: Option<ClusterBy>,
    /// Paired bootstrap resamples per comparison (0 leaves the bootstrap
    /// intervals out).
    #[arg(long, value_name = "B", default_value_t = crate::report::stats::DEFAULT_RESAMPLES)]
    pub bootstrap: usize,
    /// Seed of the bootstrap: the same records and seed give the same table.
    #[arg(long, value_name = "SEED", default_value_t = 0)]
    pub bootstrap_seed: u64,
    /// Score every row on the questions that all rows scored (a row that
    /// stopped early no longer stands beside complete ones).
    #[arg(long)]
    pub common_questions: bool,
}

/// What `--cluster` groups questions by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClusterBy {
    /// The question's database.
    Db,
}

impl TableArgs {
    pub fn options(&self) -> crate::report::stats::StatsOptions {
        crate::report::stats::StatsOptions {
            cluster: self.cluster == Some(ClusterBy::Db),
            bootstrap: self.bootstrap,
            seed: self.bootstrap_seed,
        }
    }

    /// The rows as the table compares them (all their questions, or with
    /// `--common-questions` those every row scored), and their table.
    pub fn table(
        &self,
        rows: Vec<crate::report::rows::Row>,
    ) -> anyhow::Result<(Vec<crate::report::rows::Row>, crate::report::table::ComparisonTable)> {
        let rows = if self.common_questions {
            crate::report::rows::on_common_questions(&rows)
        } else {
            rows
        };
        let table = crate::report::table::build(&rows, self.baseline.as_deref(), &self.options())?;
        Ok((rows, table))
    }
}
