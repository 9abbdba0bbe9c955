//! The one way the engine asks an optimizer for points to try: points that
//! break the space's relations (`young_mb < heap_mb`) never become trials.
//! The optimizer is told each such point as failed at once, so that it
//! learns to avoid the region, and asked again; every optimizer keeps its
//! own rules, since to it a refused point is a failed evaluation.

use crate::error::Result;
use crate::optim::{self, Candidate, Observed, Optimizer};
use crate::space::Space;

/// Rounds of asking again before giving up on the rest of a batch.
const ATTEMPTS: usize = 50;

/// Up to `n` candidates (unit cube, clamped) whose configurations satisfy `space`'s
/// relations. Fewer when the optimizer has finished, or keeps proposing only refused points
/// for [`ATTEMPTS`] rounds.
pub(crate) fn ask_valid(optimizer: &mut dyn Optimizer, space: &Space, n: usize) -> Result<Vec<Candidate>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..ATTEMPTS {
        let asked = optimizer.ask(n - out.len())?;
        if asked.is_empty() {
            break;
        }
        let mut refused = Vec::new();
        for mut c in asked {
            optim::clamp_unit(&mut c.x);
            if space.relations.is_empty() || space.violation(&space.decode(&c.x)) == 0.0 {
                out.push(c);
            } else {
                refused.push(Observed::failed(Some(c.ticket), c.x));
            }
        }
        // Ask again only for what was refused: an optimizer that gave fewer than `n` (the end
        // of a generation) is not pressed for more.
        if refused.is_empty() || out.len() >= n {
            break;
        }
        optimizer.tell(&refused)?;
    }
    Ok(out)
}
