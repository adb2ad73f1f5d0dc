//! The ablation config (TOML): a base run config every strategy shares, the strategies, the
//! seeds, where image weights come from, the evaluation, and the claims with their decision
//! rules. Unknown keys are errors that name the key.
use std::collections::HashSet;
use std::path::{Path, PathBuf};

use freezeframe_train::RunConfig;
use freezeframe_train::config::{config_dir, resolve_path};
use freezeframe_train::evaluate::EvalSettings;
use serde::{Deserialize, Serialize};

use crate::error::LabError;
use crate::metrics::METRICS;
use freezeframe_train::probe::CLASSES;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AblationConfig {
    pub name: String,
    /// The run config every strategy shares (world, model, budget), relative to this file.
    pub base: PathBuf,
    /// Plan presets or plan files (relative to this file); each is one row of the report.
    pub strategies: Vec<String>,
    pub seeds: Vec<u64>,
    #[serde(default)]
    pub image: ImageSection,
    #[serde(default)]
    pub budget: BudgetSection,
    /// `[eval]`: every run is evaluated on the same prompts with the same noise.
    #[serde(default)]
    pub eval: EvalSettings,
    /// Significance level of every verdict's test.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    #[serde(default)]
    pub claims: Vec<Claim>,
}

fn default_alpha() -> f64 {
    0.05
}

/// Where the image weights come from: `from` (`"shipped"`, the default, or a `.safetensors`
/// file with Open-Sora keys), or `pretrain`, an image run config trained once and cached by
/// the hash of its config.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSection {
    pub from: Option<PathBuf>,
    pub pretrain: Option<PathBuf>,
}

/// Overrides of the base run's budget and logging, the same for every strategy.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetSection {
    pub steps: Option<usize>,
    /// `train.warmup`: a budget shorter than the base run's warm-up sets a shorter one (a
    /// warm-up longer than the run is refused).
    pub warmup: Option<usize>,
    pub batch_size: Option<usize>,
    /// Per-group gradient norms every this many steps.
    pub diag_every: Option<usize>,
    /// Would-be gradient norms of frozen groups every this many steps.
    pub frozen_grad_every: Option<usize>,
    pub val_every: Option<usize>,
    pub checkpoint_every: Option<usize>,
    /// Samples per prompt in each run's GIFs.
    pub sample_n: Option<usize>,
    pub sample_steps: Option<usize>,
}

/// Which way the claim expects `strategy`'s metric to lie from `against`'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    Lower,
    Higher,
}

/// A claim and its decision rule: Welch's t-test of `metric` between `strategy` and each of
/// `against` (`["*"]`: every other strategy of the grid) across seeds, p-values Holm-corrected
/// over the claim's comparisons. Supported when every comparison is significant at `alpha` in
/// the expected direction; contradicted when any is significant in the other direction;
/// inconclusive otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claim {
    pub id: String,
    pub text: String,
    pub strategy: String,
    pub against: Vec<String>,
    pub metric: String,
    pub expect: Expect,
}

impl Claim {
    /// The strategies the claim's strategy is compared with: `against`, where `*` is every
    /// strategy of the grid but its own.
    pub fn compared_with(&self, strategies: &[String]) -> Vec<String> {
        if self.against.iter().any(|a| a == "*") {
            strategies
                .iter()
                .filter(|s| **s != self.strategy)
                .cloned()
                .collect()
        } else {
            self.against.clone()
        }
    }
}

impl AblationConfig {
    pub fn load(path: &Path) -> Result<Self, LabError> {
        let text = freezeframe_fs::read_text(path).map_err(|e| LabError::Config {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let mut cfg = Self::parse(&text, path)?;
        cfg.resolve_paths(&config_dir(path)?);
        Ok(cfg)
    }

    /// Parses and validates; `path` only labels errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, LabError> {
        let cfg: Self = toml::from_str(text).map_err(|e| LabError::Config {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        cfg.validate().map_err(|message| LabError::Config {
            path: path.to_path_buf(),
            message,
        })?;
        Ok(cfg)
    }

    /// Makes the base, plan files and image paths relative to the config's folder (the same
    /// rule as a run config's: [`resolve_path`]).
    fn resolve_paths(&mut self, dir: &Path) {
        self.base = resolve_path(dir, &self.base);
        for s in &mut self.strategies {
            let is_preset = freezeframe_plan::PRESETS.iter().any(|(n, _)| n == s);
            if !is_preset {
                *s = resolve_path(dir, Path::new(s.as_str()))
                    .display()
                    .to_string();
            }
        }
        if let Some(f) = &self.image.from
            && f != Path::new("shipped")
        {
            self.image.from = Some(resolve_path(dir, f));
        }
        if let Some(p) = &self.image.pretrain {
            self.image.pretrain = Some(resolve_path(dir, p));
        }
    }

    fn validate(&self) -> Result<(), String> {
        freezeframe_train::config::check_folder_name(&self.name)?;
        if self.strategies.is_empty() {
            return Err("strategies is empty: name at least one plan".into());
        }
        let mut seen = HashSet::new();
        for s in &self.strategies {
            if !seen.insert(label(s)) {
                return Err(format!("strategies: `{}` is named twice", label(s)));
            }
        }
        if self.seeds.is_empty() {
            return Err("seeds is empty: give at least one seed (three for intervals)".into());
        }
        let mut seeds = HashSet::new();
        for s in &self.seeds {
            if !seeds.insert(s) {
                return Err(format!("seeds: {s} is listed twice"));
            }
        }
        if self.image.from.is_some() && self.image.pretrain.is_some() {
            return Err("[image]: set `from` or `pretrain`, not both".into());
        }
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            return Err(format!("alpha = {} must lie in (0, 1)", self.alpha));
        }
        if self.eval.n == 0 || self.eval.steps == 0 {
            return Err("[eval]: n and steps must be at least 1".into());
        }
        if !(self.eval.cfg.is_finite() && self.eval.cfg >= 0.0) {
            return Err(format!(
                "[eval] cfg = {} must be a number ≥ 0",
                self.eval.cfg
            ));
        }
        use freezeframe_train::limits::{MAX_CFG, MAX_SAMPLER_STEPS, MAX_VIDEOS};
        for (key, v, limit) in [
            ("n", self.eval.n, MAX_VIDEOS),
            ("steps", self.eval.steps, MAX_SAMPLER_STEPS),
        ] {
            if v > limit {
                return Err(format!("[eval] {key} = {v} is above the limit {limit}"));
            }
        }
        if self.eval.cfg > MAX_CFG {
            return Err(format!(
                "[eval] cfg = {} is above the limit {MAX_CFG}",
                self.eval.cfg
            ));
        }
        self.validate_claims()
    }

    /// Claims name strategies of this config, each id once, never a strategy against itself.
    fn validate_claims(&self) -> Result<(), String> {
        let labels: Vec<String> = self.strategies.iter().map(|s| label(s)).collect();
        let mut ids = HashSet::new();
        for c in &self.claims {
            if !ids.insert(&c.id) {
                return Err(format!("claims: id `{}` is used twice", c.id));
            }
            for s in std::iter::once(&c.strategy).chain(c.against.iter().filter(|a| *a != "*")) {
                if !labels.contains(s) {
                    return Err(format!(
                        "claims `{}`: `{s}` is not one of the strategies {labels:?}",
                        c.id
                    ));
                }
            }
            if c.against.contains(&c.strategy) {
                return Err(format!(
                    "claims `{}`: `{}` is compared with itself",
                    c.id, c.strategy
                ));
            }
            let probe = |k: &str| {
                CLASSES
                    .iter()
                    .any(|class| k.strip_prefix("probe_") == Some(class.key()))
            };
            if !METRICS.iter().any(|m| m.key == c.metric) && !probe(&c.metric) {
                let keys: Vec<&str> = METRICS.iter().map(|m| m.key).collect();
                let probes: Vec<String> = CLASSES
                    .iter()
                    .map(|c| format!("probe_{}", c.key()))
                    .collect();
                return Err(format!(
                    "claims `{}`: metric = {:?} is not one of {keys:?} or {probes:?}",
                    c.id, c.metric
                ));
            }
            if c.against.is_empty() {
                return Err(format!("claims `{}`: against is empty", c.id));
            }
        }
        Ok(())
    }

    /// The base run config with the budget overrides applied and validated.
    pub fn base_config(&self) -> Result<RunConfig, LabError> {
        let cfg = RunConfig::load(&self.base).map_err(|e| LabError::Config {
            path: self.base.clone(),
            message: e.to_string(),
        })?;
        self.with_budget(cfg)
    }

    /// `cfg` with the `[budget]` overrides, validated again as a whole (a zero batch or a
    /// count of steps the overrides set is refused like one in the base file).
    pub fn with_budget(&self, mut cfg: RunConfig) -> Result<RunConfig, LabError> {
        self.apply_budget(&mut cfg);
        let checked = RunConfig::parse(&cfg.to_toml(), Path::new("[budget]"))?;
        // Parsing again keeps the plan and paths exactly as resolved.
        debug_assert_eq!(checked, cfg);
        Ok(cfg)
    }

    fn apply_budget(&self, cfg: &mut RunConfig) {
        let b = &self.budget;
        let set = |dst: &mut usize, v: Option<usize>| {
            if let Some(v) = v {
                *dst = v;
            }
        };
        set(&mut cfg.train.steps, b.steps);
        set(&mut cfg.train.warmup, b.warmup);
        set(&mut cfg.train.batch_size, b.batch_size);
        set(&mut cfg.log.diag_every, b.diag_every);
        set(&mut cfg.log.frozen_grad_every, b.frozen_grad_every);
        set(&mut cfg.log.val_every, b.val_every);
        set(&mut cfg.log.checkpoint_every, b.checkpoint_every);
        set(&mut cfg.sample.n, b.sample_n);
        set(&mut cfg.sample.steps, b.sample_steps);
    }
}

/// A strategy's row name: the preset name, or a plan file's stem.
pub fn label(strategy: &str) -> String {
    if freezeframe_plan::PRESETS
        .iter()
        .any(|(n, _)| *n == strategy)
    {
        return strategy.to_string();
    }
    Path::new(strategy)
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| strategy.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"
name = "t"
base = "base.toml"
strategies = ["full", "temporal-only"]
seeds = [0, 1]
"#;

    fn err(text: &str) -> String {
        match AblationConfig::parse(text, Path::new("a.toml")) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("accepted: {text}"),
        }
    }

    #[test]
    fn parses_and_rejects_what_it_should() {
        assert!(AblationConfig::parse(OK, Path::new("a.toml")).is_ok());
        assert!(err(&OK.replace("[0, 1]", "[]")).contains("seeds is empty"));
        assert!(err(&OK.replace("[0, 1]", "[1, 1]")).contains("listed twice"));
        assert!(err(&OK.replace("\"temporal-only\"", "\"full\"")).contains("named twice"));
        assert!(
            err(&OK.replace("[\"full\", \"temporal-only\"]", "[]")).contains("strategies is empty")
        );
        assert!(err(&format!("{OK}colour = 1\n")).contains("colour"));
        let e = err(&format!("{OK}[eval]\nn = 100000000\n"));
        assert!(
            e.contains("[eval] n = 100000000") && e.contains("4096"),
            "{e}"
        );
        let e = err(&format!("{OK}[eval]\ncfg = 1e10\n"));
        assert!(e.contains("[eval] cfg") && e.contains("limit"), "{e}");
        let bad_metric = format!(
            "{OK}[[claims]]\nid = \"1\"\ntext = \"x\"\nstrategy = \"full\"\nagainst = [\"*\"]\nmetric = \"speed\"\nexpect = \"lower\"\n"
        );
        assert!(err(&bad_metric).contains("metric = \"speed\""));
        // A probe class the evaluation never scores is refused before anything trains.
        let bad_probe = bad_metric.replace("\"speed\"", "\"probe_speed\"");
        let e = err(&bad_probe);
        assert!(
            e.contains("probe_speed") && e.contains("probe_direction"),
            "{e}"
        );
        let good_probe = bad_metric.replace("\"speed\"", "\"probe_colour\"");
        assert!(AblationConfig::parse(&good_probe, Path::new("s.toml")).is_ok());
        let claim = |strategy: &str, against: &str| {
            format!(
                "{OK}[[claims]]\nid = \"1\"\ntext = \"x\"\nstrategy = \"{strategy}\"\nagainst = [\"{against}\"]\nmetric = \"val_loss\"\nexpect = \"lower\"\n"
            )
        };
        assert!(err(&claim("staged", "full")).contains("`staged` is not one of"));
        assert!(err(&claim("full", "ful")).contains("`ful` is not one of"));
        assert!(err(&claim("full", "full")).contains("compared with itself"));
        let twice = format!(
            "{}{}",
            claim("full", "temporal-only"),
            &claim("full", "*")[OK.len()..]
        );
        assert!(err(&twice).contains("used twice"));
        assert!(err(&OK.replace("name = \"t\"", "name = \"../x\"")).contains("plain folder name"));
        assert!(err(&format!("{OK}[eval]\ncfg = nan\n")).contains("cfg"));
    }
}
