//! Surrogate models: the Gaussian process ([`gp`]), its output transform
//! ([`transform`]), acquisition functions ([`acquisition`]) and the L-BFGS
//! front used to fit and maximize them ([`lbfgs`]). Used by the Bayesian
//! optimizer and by reports (parameter importance, predicted values).

pub mod acquisition;
pub mod gp;
pub mod importance;
pub mod lbfgs;
pub mod subset;
pub mod transform;

pub use acquisition::Acquisition;
pub use gp::{FitOptions, Gp, Hyper, InputKind};
pub use transform::OutputTransform;
