//! `swarm`: particle swarm optimization on the unit cube (inertia-weight
//! form of Clerc's constriction, ring or global neighbourhood, velocity
//! clamping, damped reflection at the bounds), run asynchronously over
//! ask/tell.
//!
//! Every particle has at most one evaluation pending. `ask` moves the free
//! particles that have moved least (so in a synchronous loop each iteration
//! asks every particle once), using the personal and neighbourhood bests
//! known at that moment. Integer and categorical coordinates move like
//! continuous ones and are evaluated at the centre of the bin they fall in.

use serde::{Deserialize, Serialize};

use super::rng::Rng;
use super::{
    Candidate, Dim, Observed, Optimizer, OptionCheck, Pending, Problem, Settled, Snapshot, StateCodec, Tickets,
    reflect, sanitized,
};
use crate::cube::sobol_point;
use crate::error::Result;

/// The registry name and state format of `swarm`.
pub(crate) const CODEC: StateCodec = StateCodec::new("swarm", 1);
/// RNG stream of this optimizer (independent of the other optimizers' streams).
const STREAM: u64 = 0x0053_5741_524D;

/// Which particles inform a particle's social term.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Topology {
    /// Each particle sees itself and its two ring neighbours (lbest):
    /// information spreads slowly, so the swarm explores longer and is less
    /// likely to collapse on a local optimum.
    Ring,
    /// Every particle sees the best of the whole swarm (gbest): faster, greedier.
    Global,
}

/// Options of `swarm`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SwarmConfig {
    /// Number of particles. Default: `10 + 2 sqrt(d)` (SPSO 2007; small
    /// swarms converge sooner, the ring keeps them from converging too
    /// soon), at least the parallelism so every worker has a particle.
    pub particles: Option<usize>,
    /// Velocity memory. 0.7298 with the default accelerations is Clerc and
    /// Kennedy's constriction, which converges without velocity explosion.
    pub inertia: f64,
    /// Pull towards the particle's own best.
    pub cognitive: f64,
    /// Pull towards the neighbourhood's best.
    pub social: f64,
    /// Which particles inform each other: `ring` (default) or `global`.
    pub topology: Topology,
    /// Largest step per coordinate and move, as a fraction of the range.
    pub max_velocity: f64,
    /// Re-seed the swarm when its best has not improved for this many
    /// iterations (a stalled swarm has collapsed or is circling one region;
    /// fresh particles spend the rest of the budget better); `None` never
    /// restarts.
    pub restart_after: Option<u64>,
}

impl Default for SwarmConfig {
    fn default() -> Self {
        SwarmConfig {
            particles: None,
            inertia: 0.7298,
            cognitive: 1.49618,
            social: 1.49618,
            topology: Topology::Ring,
            max_velocity: 0.5,
            restart_after: Some(50),
        }
    }
}

impl SwarmConfig {
    fn check(&self) -> Result<()> {
        let mut check = OptionCheck::default();
        if let Some(p) = self.particles
            && p < 2
        {
            check.bad("particles", format!("must be at least 2 (got {p})"));
        }
        if !(self.inertia.is_finite() && (0.0..1.0).contains(&self.inertia)) {
            check.bad("inertia", format!("must be in [0, 1) (got {})", self.inertia));
        }
        for (field, c) in [("cognitive", self.cognitive), ("social", self.social)] {
            if !(c.is_finite() && c >= 0.0) {
                check.bad(field, format!("must be a finite number >= 0 (got {c})"));
            }
        }
        if !(self.max_velocity.is_finite() && self.max_velocity > 0.0 && self.max_velocity <= 1.0) {
            check.bad("max_velocity", format!("must be in (0, 1] (got {})", self.max_velocity));
        }
        if self.restart_after == Some(0) {
            check.bad("restart_after", "must be at least 1 (got 0)");
        }
        check.finish()
    }
}

fn default_particles(d: usize, parallelism: usize) -> usize {
    (10 + (2.0 * (d as f64).sqrt()).round() as usize).max(parallelism)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Particle {
    /// Current position (continuous in every coordinate).
    x: Vec<f64>,
    v: Vec<f64>,
    /// Personal best (position and result).
    best: Option<Observed>,
    /// Times this particle has been asked (its iteration count).
    moves: u64,
    /// Its pending evaluation: the ticket and the position asked (kept, as
    /// a restart may move the particle before the result comes back).
    pending: Option<Candidate>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    rng: Rng,
    next_ticket: Tickets,
    particles: Vec<Particle>,
    /// Extra points asked while every particle was pending.
    scouts: Pending<Candidate>,
    /// Best result of the whole run (including foreign points).
    best: Option<Observed>,
    /// Swarm iterations (the least-moved particle's moves) without a new
    /// best, and the iteration count when that was last checked.
    stall: u64,
    iteration: u64,
    improved: bool,
    restarts: u64,
}

/// Particle swarm optimization; see the module docs.
pub struct ParticleSwarm {
    dims: Vec<Dim>,
    config: SwarmConfig,
    state: State,
}

impl ParticleSwarm {
    /// Check the options (every bad one is reported) and place the
    /// particles on a scrambled Sobol design.
    pub fn new(problem: &Problem, config: SwarmConfig) -> Result<Self> {
        config.check()?;
        let d = problem.dim();
        let n = config.particles.unwrap_or_else(|| default_particles(d, problem.parallelism));
        let mut rng = Rng::new(problem.seed, STREAM);
        let sobol_seed = problem.seed ^ STREAM.rotate_left(23);
        let particles = (0..n as u64)
            .map(|i| {
                let x = sobol_point(i, d, sobol_seed);
                let v = initial_velocity(&x, config.max_velocity, &mut rng);
                Particle { x, v, best: None, moves: 0, pending: None }
            })
            .collect();
        Ok(ParticleSwarm {
            dims: problem.dims.clone(),
            config,
            state: State {
                rng,
                next_ticket: Tickets::default(),
                particles,
                scouts: Pending::default(),
                best: None,
                stall: 0,
                iteration: 0,
                improved: false,
                restarts: 0,
            },
        })
    }

    /// The point actually evaluated for a position: discrete coordinates at
    /// their bin centres.
    fn evaluated(&self, x: &[f64]) -> Vec<f64> {
        x.iter().zip(&self.dims).map(|(v, dim)| dim.snap(*v)).collect()
    }

    /// Best personal best among the particle's informants.
    fn informant_best(&self, i: usize) -> Option<&Observed> {
        let ps = &self.state.particles;
        let n = ps.len();
        let better = |a: Option<&'_ Observed>, b: Option<&'_ Observed>| -> bool {
            match (a, b) {
                (Some(a), Some(b)) => a.cmp_quality(b).is_lt(),
                (Some(_), None) => true,
                _ => false,
            }
        };
        let mut best: Option<&Observed> = None;
        let mut consider = |k: usize| {
            let cand = ps[k].best.as_ref();
            if better(cand, best) {
                best = cand;
            }
        };
        match self.config.topology {
            Topology::Global => (0..n).for_each(&mut consider),
            Topology::Ring => [(i + n - 1) % n, i, (i + 1) % n].into_iter().for_each(&mut consider),
        }
        best
    }

    /// Move particle `i` one step.
    fn step(&mut self, i: usize) {
        let own = self.state.particles[i].best.as_ref().map(|b| b.x.clone());
        let social = self.informant_best(i).map(|b| b.x.clone());
        let c = &self.config;
        let vmax = c.max_velocity;
        let rng = &mut self.state.rng;
        let p = &mut self.state.particles[i];
        for j in 0..p.x.len() {
            let pj = own.as_ref().map_or(p.x[j], |b| b[j]);
            let lj = social.as_ref().map_or(pj, |b| b[j]);
            let (r1, r2) = (rng.uniform(), rng.uniform());
            let mut v = c.inertia * p.v[j] + c.cognitive * r1 * (pj - p.x[j]) + c.social * r2 * (lj - p.x[j]);
            if !v.is_finite() {
                v = 0.0;
            }
            v = v.clamp(-vmax, vmax);
            let mut x = p.x[j] + v;
            // Stop at the wall and bounce back with half the speed: the
            // optimum may lie on the bound, so the particle must be able to
            // sit there, but it should not stick to it.
            if x < 0.0 {
                x = 0.0;
                v *= -0.5;
            } else if x > 1.0 {
                x = 1.0;
                v *= -0.5;
            }
            p.x[j] = x;
            p.v[j] = v;
        }
    }

    /// Re-seed a stalled swarm: particles are thrown across the cube and
    /// only the run's best is remembered.
    fn maybe_restart(&mut self) {
        let Some(limit) = self.config.restart_after else { return };
        let iteration = self.state.particles.iter().map(|p| p.moves).min().unwrap_or(0);
        if iteration <= self.state.iteration {
            return;
        }
        // One swarm iteration has completed since the last check.
        self.state.iteration = iteration;
        if std::mem::take(&mut self.state.improved) {
            self.state.stall = 0;
            return;
        }
        self.state.stall += 1;
        if self.state.stall < limit {
            return;
        }
        let d = self.dims.len();
        self.state.stall = 0;
        self.state.restarts += 1;
        let vmax = self.config.max_velocity;
        let rng = &mut self.state.rng;
        for p in self.state.particles.iter_mut() {
            // Fresh random position; the personal best is forgotten so the
            // particle explores its new region instead of flying back.
            p.x = rng.unit_point(d);
            p.v = initial_velocity(&p.x, vmax, rng);
            p.best = None;
        }
        // Keep the run's best in one particle so the swarm never loses it.
        if let Some(best) = self.state.best.clone() {
            let k = self.state.rng.below(self.state.particles.len());
            self.state.particles[k].best = Some(best);
        }
    }

    fn next_candidate(&mut self) -> Candidate {
        self.maybe_restart();
        let free = self
            .state
            .particles
            .iter()
            .enumerate()
            .filter(|(_, p)| p.pending.is_none())
            .min_by_key(|(i, p)| (p.moves, *i))
            .map(|(i, _)| i);
        match free {
            Some(i) => {
                if self.state.particles[i].moves > 0 {
                    self.step(i);
                }
                let ticket = self.state.next_ticket.issue();
                let p = &mut self.state.particles[i];
                p.moves += 1;
                p.pending = Some(Candidate { ticket, x: p.x.clone() });
                let x = self.evaluated(&self.state.particles[i].x);
                Candidate { ticket, x }
            }
            None => {
                // Every particle is busy: sample near the best instead of
                // answering nothing (the contract wants at least one point).
                let sigma = self.state.particles.iter().flat_map(|p| p.v.iter().map(|v| v.abs())).sum::<f64>()
                    / (self.state.particles.len() * self.dims.len()).max(1) as f64;
                let sigma = sigma.max(0.01);
                let centre = match &self.state.best {
                    Some(b) => b.x.clone(),
                    None => self.state.particles[0].x.clone(),
                };
                let rng = &mut self.state.rng;
                let x: Vec<f64> = centre.iter().map(|c| reflect(c + sigma * rng.normal())).collect();
                let x = self.evaluated(&x);
                self.state.scouts.hand_out(&mut self.state.next_ticket, |ticket| Candidate { ticket, x })
            }
        }
    }

    fn note_best(&mut self, o: &Observed) {
        if o.value.is_none() {
            return;
        }
        let better = match &self.state.best {
            Some(b) => o.cmp_quality(b).is_lt(),
            None => true,
        };
        if better {
            self.state.best = Some(o.clone());
            self.state.improved = true;
        }
    }

    /// A point the swarm did not propose (or a scout): it becomes the first
    /// position of a particle not yet asked, or else replaces the worst
    /// personal best it beats.
    fn adopt(&mut self, o: Observed) {
        self.note_best(&o);
        let ps = &mut self.state.particles;
        if let Some(p) = ps.iter_mut().rev().find(|p| p.moves == 0 && p.pending.is_none()) {
            p.x = o.x.clone();
            p.moves = 1;
            p.best = o.value.is_some().then_some(o);
            return;
        }
        if o.value.is_none() {
            return;
        }
        let worst = ps
            .iter()
            .enumerate()
            .max_by(|(_, a), (_, b)| match (&a.best, &b.best) {
                (Some(a), Some(b)) => a.cmp_quality(b),
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, None) => std::cmp::Ordering::Equal,
            })
            .map(|(i, _)| i);
        if let Some(i) = worst {
            let beats = match &ps[i].best {
                Some(b) => o.cmp_quality(b).is_lt(),
                None => true,
            };
            if beats {
                ps[i].best = Some(o);
            }
        }
    }

    fn accept(&mut self, o: &Observed) {
        let particle = o
            .ticket
            .and_then(|t| self.state.particles.iter().position(|p| p.pending.as_ref().is_some_and(|c| c.ticket == t)));
        let Some(i) = particle else {
            // A scout's result, or a point the swarm did not propose.
            match self.state.scouts.settle(o, self.dims.len()) {
                Settled::Own(_, told) | Settled::Foreign(told) => self.adopt(told),
                Settled::Unusable => {}
            }
            return;
        };
        let p = &mut self.state.particles[i];
        let x = p.pending.take().map(|c| c.x).unwrap_or_else(|| p.x.clone());
        let result = sanitized(x, o);
        self.note_best(&Observed { x: self.evaluated(&result.x), ..result.clone() });
        let p = &mut self.state.particles[i];
        let better = match &p.best {
            Some(b) => result.value.is_some() && result.cmp_quality(b).is_lt(),
            None => result.value.is_some(),
        };
        if better {
            p.best = Some(result);
        }
    }
}

/// Half the way to a random point of the cube, clamped.
fn initial_velocity(x: &[f64], vmax: f64, rng: &mut Rng) -> Vec<f64> {
    x.iter().map(|&xi| (0.5 * (rng.uniform() - xi)).clamp(-vmax, vmax)).collect()
}

impl Optimizer for ParticleSwarm {
    fn name(&self) -> &'static str {
        CODEC.name
    }

    fn ask(&mut self, n: usize) -> Result<Vec<Candidate>> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let busy = self.state.particles.iter().all(|p| p.pending.is_some());
            // Scouts only when nothing else can be answered.
            if busy && !out.is_empty() {
                break;
            }
            out.push(self.next_candidate());
        }
        Ok(out)
    }

    fn tell(&mut self, results: &[Observed]) -> Result<()> {
        for o in results {
            self.accept(o);
        }
        Ok(())
    }

    fn snapshot(&self) -> Result<Snapshot> {
        CODEC.snapshot(&self.state, self.dims.len())
    }

    fn restore(&mut self, snapshot: &Snapshot) -> Result<()> {
        self.state = CODEC.restore(snapshot, self.dims.len())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sphere(x: &[f64]) -> f64 {
        x.iter().map(|v| (v - 0.8).powi(2)).sum()
    }

    fn run(pso: &mut ParticleSwarm, f: impl Fn(&[f64]) -> f64, evals: usize, batch: usize) -> Vec<Candidate> {
        let mut all = Vec::new();
        while all.len() < evals {
            let c = pso.ask(batch).unwrap();
            assert!(!c.is_empty(), "ask({batch}) answered nothing after {} of {evals} evaluations", all.len());
            let told: Vec<Observed> = c.iter().map(|c| Observed::ok(Some(c.ticket), c.x.clone(), f(&c.x))).collect();
            pso.tell(&told).unwrap();
            all.extend(c);
        }
        all
    }

    #[test]
    fn stays_in_bounds_with_a_violent_swarm() {
        // Large accelerations push particles against the walls constantly.
        let config =
            SwarmConfig { inertia: 0.95, cognitive: 3.0, social: 3.0, max_velocity: 1.0, ..Default::default() };
        let mut pso = ParticleSwarm::new(&Problem::new(vec![Dim::Continuous; 5], 1), config).unwrap();
        let asked = run(&mut pso, |x| -x.iter().sum::<f64>(), 2000, 8);
        assert!(asked.iter().all(|c| c.x.iter().all(|v| (0.0..=1.0).contains(v))));
        for p in &pso.state.particles {
            assert!(p.x.iter().all(|v| (0.0..=1.0).contains(v)));
            assert!(p.v.iter().all(|v| v.abs() <= 1.0));
        }
        // The optimum is the corner (1,...,1): particles must reach the wall.
        let best = pso.state.best.as_ref().unwrap();
        assert!(best.value.unwrap() < -4.9, "best {:?}", best);
    }

    #[test]
    fn each_iteration_asks_every_particle_once() {
        let config = SwarmConfig { particles: Some(10), ..Default::default() };
        let mut pso = ParticleSwarm::new(&Problem::new(vec![Dim::Continuous; 3], 2), config).unwrap();
        run(&mut pso, sphere, 30, 6); // batches straddle iterations
        let moves: Vec<u64> = pso.state.particles.iter().map(|p| p.moves).collect();
        assert!(moves.iter().all(|&m| m == 3), "moves {moves:?}");
        // A batch larger than the swarm returns each particle once.
        let c = pso.ask(25).unwrap();
        assert_eq!(c.len(), 10);
        // Everything pending: still one answer (a scout), never an empty one.
        let s = pso.ask(3).unwrap();
        assert_eq!(s.len(), 1);
        let mut told: Vec<Observed> =
            c.iter().chain(&s).map(|c| Observed::ok(Some(c.ticket), c.x.clone(), sphere(&c.x))).collect();
        told.reverse();
        pso.tell(&told).unwrap();
        assert!(pso.state.particles.iter().all(|p| p.pending.is_none()));
        assert!(pso.state.scouts.is_empty());
    }

    #[test]
    fn converges_on_a_sphere_and_snaps_discrete_coordinates() {
        let dims = vec![Dim::Continuous, Dim::Integer { levels: 9 }, Dim::Categorical { choices: 3 }, Dim::Continuous];
        let mut pso = ParticleSwarm::new(&Problem::new(dims.clone(), 3), SwarmConfig::default()).unwrap();
        let asked = run(&mut pso, sphere, 1500, 5);
        for c in &asked {
            for (v, dim) in c.x.iter().zip(&dims) {
                assert_eq!(*v, dim.snap(*v), "discrete coordinates are evaluated at bin centres");
            }
        }
        let best = pso.state.best.as_ref().unwrap().value.unwrap();
        // Best reachable: continuous dims exact, int at 7.5/9, categorical at 2.5/3.
        let floor = (7.5f64 / 9.0 - 0.8).powi(2) + (2.5f64 / 3.0 - 0.8).powi(2);
        assert!(best < floor + 1e-4, "best {best} vs reachable {floor}");
    }

    #[test]
    fn a_foreign_point_before_the_first_ask_becomes_a_particle() {
        let mut pso = ParticleSwarm::new(&Problem::new(vec![Dim::Continuous; 2], 4), SwarmConfig::default()).unwrap();
        pso.tell(&[Observed::ok(None, vec![0.3, 0.9], 0.5)]).unwrap();
        let last = pso.state.particles.last().unwrap();
        assert_eq!(last.x, vec![0.3, 0.9]);
        assert_eq!(last.best.as_ref().unwrap().value, Some(0.5));
        // The rest of the first iteration still asks the others once each.
        let n = pso.state.particles.len();
        let c = pso.ask(100).unwrap();
        assert_eq!(c.len(), n);
    }

    #[test]
    fn restarts_a_collapsed_swarm() {
        let config = SwarmConfig { particles: Some(8), restart_after: Some(5), ..Default::default() };
        let mut pso = ParticleSwarm::new(&Problem::new(vec![Dim::Continuous; 2], 5), config).unwrap();
        // A flat function: nothing ever improves after the first point.
        run(&mut pso, |_| 1.0, 4000, 8);
        assert!(pso.state.restarts > 0);
    }

    #[test]
    fn rejects_bad_options() {
        let p = Problem::new(vec![Dim::Continuous; 2], 1);
        for c in [
            SwarmConfig { particles: Some(1), ..Default::default() },
            SwarmConfig { inertia: 1.2, ..Default::default() },
            SwarmConfig { max_velocity: 0.0, ..Default::default() },
            SwarmConfig { social: f64::NAN, ..Default::default() },
        ] {
            assert!(ParticleSwarm::new(&p, c).is_err());
        }
        let c: SwarmConfig = serde_json::from_str(r#"{"topology": "global", "particles": 30}"#).unwrap();
        assert_eq!(c.topology, Topology::Global);
        assert!(serde_json::from_str::<SwarmConfig>(r#"{"swarm_size": 3}"#).is_err());
    }
}
