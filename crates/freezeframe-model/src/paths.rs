//! User-facing parameter paths: Open-Sora's STDiT state-dict keys.
//!
//! Burn names a parameter by its field path (`t_embedder.fc1.weight`). Where Open-Sora keeps
//! layers inside an `nn.Sequential`, its key carries the list index instead (`t_embedder.mlp.0`,
//! `t_block.1`); [`to_opensora`] and [`from_opensora`] translate. Linear weights keep the name
//! `weight` but Burn stores them [in, out] where PyTorch stores [out, in]; importers transpose.
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::prelude::*;
use burn::tensor::TensorData;

/// Burn field path prefix → Open-Sora key prefix: the one key map (checkpoint files remap with
/// it too, through [`prefix_pattern`]).
pub const RENAMES: [(&str, &str); 3] = [
    ("t_embedder.fc1.", "t_embedder.mlp.0."),
    ("t_embedder.fc2.", "t_embedder.mlp.2."),
    ("t_block.", "t_block.1."),
];

/// Burn path → Open-Sora key.
pub fn to_opensora(burn_path: &str) -> String {
    for (from, to) in RENAMES {
        if let Some(rest) = burn_path.strip_prefix(from) {
            return format!("{to}{rest}");
        }
    }
    burn_path.to_string()
}

/// Open-Sora key → Burn path (inverse of [`to_opensora`]).
pub fn from_opensora(path: &str) -> String {
    for (from, to) in RENAMES {
        if let Some(rest) = path.strip_prefix(to) {
            return format!("{from}{rest}");
        }
    }
    path.to_string()
}

/// A regular expression matching `prefix` literally at the start of a key (for Burn's store
/// key remapping).
pub fn prefix_pattern(prefix: &str) -> String {
    let mut p = String::from("^");
    for c in prefix.chars() {
        if !c.is_ascii_alphanumeric() && c != '_' {
            p.push('\\');
        }
        p.push(c);
    }
    p
}

/// One parameter tensor of a model.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamInfo {
    /// Open-Sora key, e.g. `blocks.0.attn_temp.proj.weight`.
    pub path: String,
    /// Burn's field path, e.g. `t_embedder.fc1.weight`.
    pub burn_path: String,
    pub shape: Vec<usize>,
    pub id: ParamId,
}

impl ParamInfo {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Tracks the module path during a traversal; shared by visitors and mappers.
#[derive(Default)]
pub struct PathStack(Vec<String>);

impl PathStack {
    pub fn enter(&mut self, name: &str) {
        self.0.push(name.to_string());
    }
    pub fn exit(&mut self) {
        self.0.pop();
    }
    /// The current Burn path joined with dots.
    pub fn current(&self) -> String {
        self.0.join(".")
    }
}

struct Collector {
    stack: PathStack,
    out: Vec<ParamInfo>,
}

impl ModuleVisitor for Collector {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.stack.enter(name);
    }
    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.stack.exit();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let burn_path = self.stack.current();
        self.out.push(ParamInfo {
            path: to_opensora(&burn_path),
            burn_path,
            shape: param.lazy_shape().to_vec(),
            id: param.id,
        });
    }
}

/// Every float parameter of `module`, in traversal order, with its Open-Sora path.
pub fn param_table<M: Module>(module: &M) -> Vec<ParamInfo> {
    let mut c = Collector {
        stack: PathStack::default(),
        out: Vec::new(),
    };
    module.visit(&mut c);
    c.out
}

/// Reads a parameter's current values (row-major f32) when called.
pub type ReadValues<'a> = &'a mut dyn FnMut() -> Vec<f32>;

struct ValueMapper<F> {
    stack: PathStack,
    f: F,
}

impl<F> ModuleMapper for ValueMapper<F>
where
    F: FnMut(&str, &[usize], ReadValues) -> Option<Vec<f32>>,
{
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.stack.enter(name);
    }
    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.stack.exit();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let path = to_opensora(&self.stack.current());
        let shape = param.lazy_shape().to_vec();
        let new = {
            let mut read = || {
                param
                    .val()
                    .into_data()
                    .convert::<f32>()
                    .try_into_vec::<f32>()
                    .expect("f32 after convert::<f32>()")
            };
            (self.f)(&path, &shape, &mut read)
        };
        match new {
            None => param,
            Some(values) => param.map(|old| {
                let grad = old.is_require_grad();
                Tensor::from_data(TensorData::new(values, shape), &old.device())
                    .set_require_grad(grad)
            }),
        }
    }
}

/// Rewrites parameter values by Open-Sora path: `f(path, shape, read)` returns the new
/// row-major values, or `None` to keep the parameter as it is. `read()` yields the current
/// values (and is only paid for when called). Ids and gradient requirements are kept.
pub fn map_values<M, F>(module: M, f: F) -> M
where
    M: Module,
    F: FnMut(&str, &[usize], ReadValues) -> Option<Vec<f32>>,
{
    module.map(&mut ValueMapper {
        stack: PathStack::default(),
        f,
    })
}

struct StableIds(u64);

impl ModuleMapper for StableIds {
    fn map_float<const D: usize>(&mut self, mut param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        param.id = ParamId::from(self.0);
        self.0 += 1;
        param
    }
}

/// Sets each parameter's id to its traversal index (from 1), so that a model rebuilt from the
/// same config has the same ids — Burn's optimizer state is keyed by id.
pub fn stable_ids<M: Module>(module: M) -> M {
    module.map(&mut StableIds(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renames_round_trip() {
        for p in [
            "t_embedder.fc1.weight",
            "t_block.bias",
            "blocks.0.attn.qkv.weight",
        ] {
            assert_eq!(from_opensora(&to_opensora(p)), p);
        }
        assert_eq!(to_opensora("t_block.weight"), "t_block.1.weight");
        assert_eq!(to_opensora("t_embedder.fc2.bias"), "t_embedder.mlp.2.bias");
    }
}
