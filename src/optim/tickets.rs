//! The ticket bookkeeping every optimizer shares: handing out tickets,
//! remembering what each pending candidate was for, and sorting a told
//! result into the answer to one of its own candidates or a point it did
//! not propose (made safe to store either way).

use serde::{Deserialize, Serialize};

use super::{Candidate, Observed, clamp_unit};

/// The next ticket to hand out; serialized as the bare number (the
/// `next_ticket` field of the optimizers' states).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct Tickets(u64);

impl Tickets {
    /// A fresh ticket.
    pub(crate) fn issue(&mut self) -> u64 {
        let ticket = self.0;
        self.0 += 1;
        ticket
    }

    /// The ticket [`Tickets::issue`] gives next (= how many were issued).
    pub(crate) fn peek(&self) -> u64 {
        self.0
    }
}

/// What an optimizer remembers of a candidate it handed out.
pub(crate) trait Ticketed {
    /// The candidate's ticket.
    fn ticket(&self) -> u64;
    /// The point asked.
    fn x(&self) -> &[f64];
}

/// [`Ticketed`] for structs that keep the candidate as `ticket: u64` and
/// `x: Vec<f64>` fields.
macro_rules! ticketed {
    ($($entry:ty),* $(,)?) => {
        $(
            impl $crate::optim::Ticketed for $entry {
                fn ticket(&self) -> u64 {
                    self.ticket
                }
                fn x(&self) -> &[f64] {
                    &self.x
                }
            }
        )*
    };
}
pub(crate) use ticketed;

ticketed!(Candidate);

impl Ticketed for (u64, Vec<f64>) {
    fn ticket(&self) -> u64 {
        self.0
    }
    fn x(&self) -> &[f64] {
        &self.1
    }
}

/// The candidates handed out and not told back yet, in the order asked;
/// serialized as the bare list.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct Pending<T>(Vec<T>);

impl<T> Default for Pending<T> {
    fn default() -> Self {
        Pending(Vec::new())
    }
}

/// A told result, sorted by [`Pending::settle`].
pub(crate) enum Settled<T> {
    /// The answer to an own candidate: what was remembered of it, and the
    /// result at the point asked, sanitized.
    Own(T, Observed),
    /// A point the optimizer did not propose, or a ticket it no longer
    /// knows: clamped into the cube and sanitized.
    Foreign(Observed),
    /// A point of another dimension: nothing to learn from.
    Unusable,
}

impl<T: Ticketed> Pending<T> {
    /// Remember `entry` (made for a fresh ticket) and hand out its candidate.
    pub(crate) fn hand_out(&mut self, tickets: &mut Tickets, entry: impl FnOnce(u64) -> T) -> Candidate {
        let entry = entry(tickets.issue());
        let candidate = Candidate { ticket: entry.ticket(), x: entry.x().to_vec() };
        self.0.push(entry);
        candidate
    }

    /// Remember an entry whose ticket was issued elsewhere.
    pub(crate) fn push(&mut self, entry: T) {
        self.0.push(entry);
    }

    /// Forget and return the entry of `ticket`, if it is pending.
    pub(crate) fn take(&mut self, ticket: Option<u64>) -> Option<T> {
        let at = self.0.iter().position(|e| Some(e.ticket()) == ticket)?;
        Some(self.0.remove(at))
    }

    /// Sort a told result in a space of `dim` parameters (see [`Settled`]).
    pub(crate) fn settle(&mut self, o: &Observed, dim: usize) -> Settled<T> {
        match self.take(o.ticket) {
            Some(entry) => {
                let told = sanitized(entry.x().to_vec(), o);
                Settled::Own(entry, told)
            }
            None => foreign(o, dim).map_or(Settled::Unusable, Settled::Foreign),
        }
    }

    /// The pending entries, oldest first.
    pub(crate) fn iter(&self) -> std::slice::Iter<'_, T> {
        self.0.iter()
    }

    /// How many candidates are pending.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether nothing is pending.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A told point the optimizer did not propose, as it stores one: clamped
/// into the cube and sanitized; `None` when it has another dimension.
pub(crate) fn foreign(o: &Observed, dim: usize) -> Option<Observed> {
    if o.x.len() != dim {
        return None;
    }
    let mut x = o.x.clone();
    clamp_unit(&mut x);
    Some(sanitized(x, o))
}

/// A told result as an optimizer stores it: its own copy of the coordinates,
/// non-finite numbers made safe (a NaN or infinite value counts as a failed
/// evaluation, a NaN or infinite violation as the largest one, a gradient
/// with a non-finite component as none, a non-finite objective as a failure).
pub(crate) fn sanitized(x: Vec<f64>, o: &Observed) -> Observed {
    let objectives_ok = o.objectives.iter().all(|v| v.is_finite());
    let value = o.value.filter(|v| v.is_finite() && objectives_ok);
    let objectives = if value.is_some() { o.objectives.clone() } else { Vec::new() };
    let violation = if o.violation.is_nan() || o.violation == f64::INFINITY { f64::MAX } else { o.violation.max(0.0) };
    let gradient = o.gradient.clone().filter(|g| value.is_some() && g.iter().all(|v| v.is_finite()));
    let slacks = if o.slacks.iter().all(|v| v.is_finite()) { o.slacks.clone() } else { Vec::new() };
    Observed { ticket: None, x, value, violation, gradient, slacks, objectives }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_results_keep_the_point_asked_and_foreign_ones_are_clamped() {
        let mut tickets = Tickets::default();
        let mut book: Pending<Candidate> = Pending::default();
        let a = book.hand_out(&mut tickets, |ticket| Candidate { ticket, x: vec![0.25, 0.5] });
        let b = book.hand_out(&mut tickets, |ticket| Candidate { ticket, x: vec![0.75, 0.5] });
        assert_eq!((a.ticket, b.ticket, book.len()), (0, 1, 2));
        // The told x is ignored for an own candidate; a NaN value is a failure.
        match book.settle(&Observed::ok(Some(1), vec![9.0, 9.0], f64::NAN), 2) {
            Settled::Own(entry, told) => {
                assert_eq!(entry.ticket, 1);
                assert_eq!((told.x, told.value), (vec![0.75, 0.5], None));
            }
            _ => panic!("ticket 1 is pending"),
        }
        // Told twice: the second is a foreign point.
        match book.settle(&Observed::ok(Some(1), vec![2.0, f64::NAN], 1.0), 2) {
            Settled::Foreign(told) => assert_eq!(told.x, vec![1.0, 0.5]),
            _ => panic!("ticket 1 was settled already"),
        }
        assert!(matches!(book.settle(&Observed::ok(None, vec![0.5], 1.0), 2), Settled::Unusable));
        assert_eq!(book.iter().map(|c| c.ticket).collect::<Vec<_>>(), [0]);
    }

    #[test]
    fn a_book_serializes_as_the_bare_list() {
        let mut tickets = Tickets::default();
        let mut book: Pending<(u64, Vec<f64>)> = Pending::default();
        book.hand_out(&mut tickets, |t| (t, vec![0.5]));
        assert_eq!(serde_json::to_string(&book).unwrap(), "[[0,[0.5]]]");
        assert_eq!(serde_json::to_string(&tickets).unwrap(), "1");
    }
}
