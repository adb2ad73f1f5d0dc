//! A frozen word-level text encoder standing in for Open-Sora's frozen T5.
//!
//! Each word of a fixed vocabulary gets a fixed embedding drawn from a seeded generator keyed by
//! the word itself (so the table never trains and does not depend on vocabulary order), plus a
//! sin-cos position code. Prompts are lower-cased and split on anything that is not a letter or
//! digit, then truncated or padded to `max_len` tokens.
//!
//! Unknown words: in strict mode (what `freezeframe sample` uses) they are an error that lists
//! the vocabulary, because a silently ignored word would make a sample look like a model
//! failure; in lenient mode (captions of user datasets) they map to the `<unk>` token.
use burn::prelude::*;
use burn::tensor::TensorData;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::stdit::{CaptionBatch, sincos_1d};

/// The token every out-of-vocabulary word maps to in lenient mode.
pub const UNK: &str = "<unk>";

#[derive(Debug, thiserror::Error)]
pub enum TextError {
    #[error(
        "prompt {prompt:?} has words outside the vocabulary: {unknown:?}; known words: {vocab}"
    )]
    UnknownWords {
        prompt: String,
        unknown: Vec<String>,
        vocab: String,
    },
    #[error("prompt {0:?} has no words")]
    Empty(String),
    #[error(
        "caption {prompt:?} is not in the latent cache {cache} (a latent run has features for its \
         cache's captions only; e.g. {examples})"
    )]
    NotCached {
        prompt: String,
        cache: String,
        examples: String,
    },
}

/// One encoded prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedText {
    /// [max_len, dim], row-major.
    pub tokens: Vec<f32>,
    /// [max_len]; true marks padding.
    pub pad: Vec<bool>,
}

/// Something that turns prompts into caption-token embeddings.
pub trait TextEncoder {
    fn dim(&self) -> usize;
    fn max_len(&self) -> usize;
    fn encode(&self, prompt: &str) -> Result<EncodedText, TextError>;

    /// Encode a batch into the tensors the model takes (no row nulled).
    fn encode_batch(&self, prompts: &[String], device: &Device) -> Result<CaptionBatch, TextError> {
        let (l, d) = (self.max_len(), self.dim());
        let mut tokens = Vec::with_capacity(prompts.len() * l * d);
        let mut pad = Vec::with_capacity(prompts.len() * l);
        for p in prompts {
            let e = self.encode(p)?;
            tokens.extend_from_slice(&e.tokens);
            pad.extend_from_slice(&e.pad);
        }
        let b = prompts.len();
        Ok(CaptionBatch {
            tokens: Tensor::from_data(TensorData::new(tokens, [b, l, d]), device),
            pad: Tensor::from_data(TensorData::new(pad, [b, l]), device),
            null: Tensor::<1, Bool>::full([b], false, device),
        })
    }
}

/// Lower-cased words of a prompt.
pub fn words(prompt: &str) -> Vec<String> {
    prompt
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// FNV-1a over `bytes`, its offset basis mixed with `seed`: a stable hash across Rust versions
/// and machines, unlike `DefaultHasher`.
pub fn fnv1a(seed: u64, bytes: &[u8]) -> u64 {
    use std::hash::Hasher as _;
    // FNV-1a's 64-bit offset basis; the `fnv` crate's default state.
    const BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    let mut h = fnv::FnvHasher::with_key(BASIS ^ seed);
    h.write(bytes);
    h.finish()
}

#[derive(Debug, Clone)]
pub struct WordEncoder {
    vocab: Vec<String>,
    dim: usize,
    max_len: usize,
    seed: u64,
    strict: bool,
}

impl WordEncoder {
    /// `vocab` is deduplicated and sorted; `<unk>` is always part of it.
    pub fn new(
        vocab: impl IntoIterator<Item = String>,
        dim: usize,
        max_len: usize,
        seed: u64,
    ) -> Self {
        let mut vocab: Vec<String> = vocab.into_iter().map(|w| w.to_lowercase()).collect();
        vocab.push(UNK.to_string());
        vocab.sort();
        vocab.dedup();
        Self {
            vocab,
            dim,
            max_len,
            seed,
            strict: true,
        }
    }

    /// Map unknown words to `<unk>` instead of failing.
    pub fn lenient(mut self) -> Self {
        self.strict = false;
        self
    }

    pub fn vocab(&self) -> &[String] {
        &self.vocab
    }

    fn knows(&self, w: &str) -> bool {
        self.vocab.binary_search_by(|v| v.as_str().cmp(w)).is_ok()
    }

    /// The fixed embedding of a word: N(0, 1/dim) from a generator seeded by (seed, word).
    fn word_vector(&self, word: &str) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(fnv1a(self.seed, word.as_bytes()));
        let s = 1.0 / (self.dim as f32).sqrt();
        (0..self.dim)
            .map(|_| rng.sample::<f32, _>(StandardNormal) * s)
            .collect()
    }
}

impl TextEncoder for WordEncoder {
    fn dim(&self) -> usize {
        self.dim
    }

    fn max_len(&self) -> usize {
        self.max_len
    }

    fn encode(&self, prompt: &str) -> Result<EncodedText, TextError> {
        let ws = words(prompt);
        if ws.is_empty() {
            return Err(TextError::Empty(prompt.to_string()));
        }
        let unknown: Vec<String> = ws.iter().filter(|w| !self.knows(w)).cloned().collect();
        if self.strict && !unknown.is_empty() {
            return Err(TextError::UnknownWords {
                prompt: prompt.to_string(),
                unknown,
                vocab: self
                    .vocab
                    .iter()
                    .filter(|v| *v != UNK)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        let (l, d) = (self.max_len, self.dim);
        let pos = sincos_1d(l, d);
        let mut tokens = vec![0.0f32; l * d];
        let mut pad = vec![true; l];
        for (i, w) in ws.iter().take(l).enumerate() {
            let w = if self.knows(w) { w.as_str() } else { UNK };
            let v = self.word_vector(w);
            for j in 0..d {
                // Positions at a quarter of the word scale: order matters less than identity.
                tokens[i * d + j] = v[j] + 0.25 * pos[i * d + j] / (d as f32).sqrt();
            }
            pad[i] = false;
        }
        Ok(EncodedText { tokens, pad })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published FNV-1a 64 test vectors: word embeddings (and so the shipped image model)
    /// and study run keys depend on these values staying put.
    #[test]
    fn fnv1a_golden() {
        assert_eq!(fnv1a(0, b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(0, b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(0, b"foobar"), 0x8594_4171_f739_67e8);
    }

    fn enc() -> WordEncoder {
        WordEncoder::new(
            ["a", "red", "circle", "moves", "left"].map(String::from),
            8,
            6,
            7,
        )
    }

    #[test]
    fn encodes_deterministically_with_padding() {
        let e = enc();
        let a = e.encode("A red circle moves left").unwrap();
        let b = e.encode("a RED circle, moves left!").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.pad, vec![false, false, false, false, false, true]);
        assert!(a.tokens[5 * 8..].iter().all(|&x| x == 0.0));
        assert_ne!(
            e.encode("a red circle").unwrap(),
            e.encode("a circle red").unwrap()
        );
    }

    #[test]
    fn unknown_words_error_lists_vocabulary_or_map_to_unk() {
        let err = enc().encode("a purple circle").unwrap_err().to_string();
        assert!(
            err.contains("purple") && err.contains("circle, left"),
            "{err}"
        );
        let lenient = enc().lenient();
        assert!(lenient.encode("a purple circle").is_ok());
        assert!(matches!(enc().encode("  ,"), Err(TextError::Empty(_))));
    }

    #[test]
    fn word_vectors_do_not_depend_on_vocabulary_order() {
        let a = WordEncoder::new(["red", "blue"].map(String::from), 8, 4, 1);
        let b = WordEncoder::new(["blue", "green", "red"].map(String::from), 8, 4, 1);
        assert_eq!(a.encode("red").unwrap(), b.encode("red").unwrap());
    }
}
