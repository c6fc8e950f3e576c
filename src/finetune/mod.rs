//! Fine-tuning: training examples exported from Spider's train split with
//! the very steps that build a strategy's prompt at inference time
//! ([`export`]), in the formats trainers take ([`format`]), checked before
//! training ([`check`]), and LoRA training of a local model ([`train`]).

pub mod check;
pub mod export;
pub mod format;
pub mod train;
