//! The accuracy matrix and the continual-learning metrics computed from it.
//!
//! `R[t][j]` is the accuracy on task `j` after training task `t` (0-based here; the formulas in
//! `docs/metrics.md` use 1-based indices). Every run evaluates all tasks, seen and unseen, after
//! each task, so the matrix is full once a run ends. All metrics are pure functions of the matrix.
//!
//! A method trained jointly on the union of every task ([`Protocol::Joint`], the multi-task
//! upper bound) has a `1 × T` matrix: one row after the joint training. Its OP is the mean of that
//! row; BWT, FWT and forgetting do not exist (there is no "after task t").

use serde::{Deserialize, Serialize};

/// How a method meets a stream's tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// One task after another (continual learning): a `T × T` matrix.
    #[default]
    Sequential,
    /// One training on the union of every task's data (the multi-task upper bound): a `1 × T`
    /// matrix.
    Joint,
}

/// A `T × T` accuracy matrix filled row by row as tasks finish (`1 × T` for [`Protocol::Joint`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccuracyMatrix {
    /// Number of tasks `T`.
    num_tasks: usize,
    /// `rows[t][j]` = accuracy on task `j` after training task `t`; only finished rows are present.
    rows: Vec<Vec<f64>>,
    /// Sequential (`T` rows) or joint (one row).
    #[serde(default)]
    protocol: Protocol,
}

impl AccuracyMatrix {
    /// An empty matrix for `num_tasks` tasks.
    pub fn new(num_tasks: usize) -> Self {
        Self::for_protocol(num_tasks, Protocol::Sequential)
    }

    /// An empty matrix for `num_tasks` tasks learnt under `protocol`.
    pub fn for_protocol(num_tasks: usize, protocol: Protocol) -> Self {
        Self {
            num_tasks,
            rows: Vec::with_capacity(num_tasks),
            protocol,
        }
    }

    /// The `1 × T` matrix of a joint training (accuracy on each task after it).
    pub fn joint(row: Vec<f64>) -> Self {
        Self {
            num_tasks: row.len(),
            rows: vec![row],
            protocol: Protocol::Joint,
        }
    }

    /// Sequential or joint.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Rows the complete matrix has: `T`, or 1 for a joint training.
    pub fn expected_rows(&self) -> usize {
        match self.protocol {
            Protocol::Sequential => self.num_tasks,
            Protocol::Joint => 1,
        }
    }

    /// Builds a full matrix from rows (used by tests and when reading reports).
    ///
    /// # Panics
    /// If the rows are not all of length `rows.len()` or there are more rows than columns.
    pub fn from_rows(rows: Vec<Vec<f64>>) -> Self {
        let num_tasks = rows.first().map_or(0, Vec::len);
        assert!(rows.len() <= num_tasks, "more rows than tasks");
        assert!(
            rows.iter().all(|r| r.len() == num_tasks),
            "every row of an accuracy matrix must have one entry per task"
        );
        Self {
            num_tasks,
            rows,
            protocol: Protocol::Sequential,
        }
    }

    /// Appends the row measured after training the next task.
    ///
    /// # Panics
    /// If the row length differs from the number of tasks or the matrix is already full.
    pub fn push_row(&mut self, row: Vec<f64>) {
        assert_eq!(
            row.len(),
            self.num_tasks,
            "row length must equal the number of tasks"
        );
        assert!(
            self.rows.len() < self.expected_rows(),
            "accuracy matrix is already full"
        );
        self.rows.push(row);
    }

    /// Number of tasks `T`.
    pub fn num_tasks(&self) -> usize {
        self.num_tasks
    }

    /// Number of finished rows (tasks trained so far).
    pub fn num_finished(&self) -> usize {
        self.rows.len()
    }

    /// `true` once every task has its row.
    pub fn is_complete(&self) -> bool {
        self.rows.len() == self.expected_rows()
    }

    /// The finished rows.
    pub fn rows(&self) -> &[Vec<f64>] {
        &self.rows
    }

    /// `R[t][j]`, if row `t` is finished.
    pub fn get(&self, t: usize, j: usize) -> Option<f64> {
        self.rows.get(t).and_then(|r| r.get(j)).copied()
    }

    /// Index of the last finished row, the "T" of the formulas for a partial run.
    /// `None` for a joint matrix, which has no rows "after task t" (so BWT, FWT and forgetting
    /// are `None` there).
    fn last(&self) -> Option<usize> {
        match self.protocol {
            Protocol::Sequential => self.rows.len().checked_sub(1),
            Protocol::Joint => None,
        }
    }

    /// Overall performance (average accuracy): `OP = mean_{j ≤ T} R[T][j]` over the tasks
    /// trained so far (all tasks once the run is complete); for a joint training, the mean of
    /// its one row.
    pub fn op(&self) -> Option<f64> {
        if self.protocol == Protocol::Joint {
            return self.rows.first().map(|row| mean(row.iter().copied()));
        }
        let t = self.last()?;
        Some(mean((0..=t).map(|j| self.rows[t][j])))
    }

    /// Backward transfer: `BWT = mean_{j < T} (R[T][j] − R[j][j])`, averaged over `T − 1` tasks.
    /// `None` with fewer than two finished tasks.
    pub fn bwt(&self) -> Option<f64> {
        let t = self.last()?;
        (t > 0).then(|| mean((0..t).map(|j| self.rows[t][j] - self.rows[j][j])))
    }

    /// Forward transfer: `FWT = mean_{j > 1} (R[j−1][j] − b_j)`, where `b[j]` is the accuracy of
    /// the model before it was trained for task `j` (the runner measures the untrained model).
    /// `None` with fewer than two finished tasks or if `b` is shorter than the matrix.
    pub fn fwt(&self, b: &[f64]) -> Option<f64> {
        let t = self.last()?;
        if t == 0 || b.len() < self.num_tasks {
            return None;
        }
        Some(mean((1..=t).map(|j| self.rows[j - 1][j] - b[j])))
    }

    /// Forgetting: `F_j = max_{j ≤ l < T} R[l][j] − R[T][j]`, averaged over `j < T`: the best
    /// accuracy on task `j` from the row where it was learnt on (rows before task `j` was
    /// trained do not count), minus the last. `None` with fewer than two finished tasks.
    pub fn forgetting(&self) -> Option<f64> {
        let t = self.last()?;
        (t > 0).then(|| {
            mean((0..t).map(|j| {
                let best = (j..t)
                    .map(|l| self.rows[l][j])
                    .fold(f64::NEG_INFINITY, f64::max);
                best - self.rows[t][j]
            }))
        })
    }

    /// The matrix as a fixed-width text table (percentages), rows = after task, columns = task.
    pub fn to_table(&self) -> String {
        let mut out = String::from("after\\task");
        for j in 0..self.num_tasks {
            out.push_str(&format!(" {:>6}", j + 1));
        }
        out.push('\n');
        for (t, row) in self.rows.iter().enumerate() {
            match self.protocol {
                Protocol::Sequential => out.push_str(&format!("{:>10}", t + 1)),
                Protocol::Joint => out.push_str(&format!("{:>10}", "joint")),
            }
            for v in row {
                out.push_str(&format!(" {:>6.1}", 100.0 * v));
            }
            out.push('\n');
        }
        out
    }
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 { f64::NAN } else { sum / n as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    /// A 3-task matrix worked by hand.
    ///
    /// ```text
    ///        j=1  j=2  j=3
    /// t=1    0.9  0.1  0.2
    /// t=2    0.6  0.8  0.3
    /// t=3    0.5  0.7  0.9
    /// ```
    fn hand() -> AccuracyMatrix {
        AccuracyMatrix::from_rows(vec![
            vec![0.9, 0.1, 0.2],
            vec![0.6, 0.8, 0.3],
            vec![0.5, 0.7, 0.9],
        ])
    }

    #[test]
    fn op_is_mean_of_last_row() {
        assert!(close(hand().op().unwrap(), (0.5 + 0.7 + 0.9) / 3.0));
    }

    #[test]
    fn bwt_averages_over_t_minus_one_tasks() {
        // ((0.5 - 0.9) + (0.7 - 0.8)) / 2 = -0.25
        assert!(close(hand().bwt().unwrap(), -0.25));
    }

    #[test]
    fn fwt_uses_the_row_before_each_task() {
        // b = [0.1, 0.05, 0.25]: ((0.1 - 0.05) + (0.3 - 0.25)) / 2 = 0.05
        assert!(close(hand().fwt(&[0.1, 0.05, 0.25]).unwrap(), 0.05));
        assert_eq!(hand().fwt(&[0.1]), None, "b must cover every task");
    }

    #[test]
    fn forgetting_takes_the_best_earlier_accuracy() {
        // task 1: max(0.9, 0.6) - 0.5 = 0.4 ; task 2: max(0.8) - 0.7 = 0.1 ; mean 0.25
        assert!(close(hand().forgetting().unwrap(), 0.25));
        // A task that improved after it was learnt is not forgotten negatively beyond its best.
        let m = AccuracyMatrix::from_rows(vec![vec![0.5, 0.0], vec![0.7, 0.9]]);
        assert!(close(m.forgetting().unwrap(), -0.2));
        assert!(close(m.bwt().unwrap(), 0.2));
    }

    #[test]
    fn forgetting_ignores_rows_before_the_task_was_learnt() {
        // Task 2 scores 0.9 by chance after task 1 (before it is trained), 0.4 once learnt and
        // 0.3 at the end: its forgetting is 0.4 − 0.3 = 0.1, not 0.9 − 0.3. Task 1: 0.5 − 0.5.
        let m = AccuracyMatrix::from_rows(vec![
            vec![0.5, 0.9, 0.0],
            vec![0.5, 0.4, 0.0],
            vec![0.5, 0.3, 0.9],
        ]);
        assert!(close(m.forgetting().unwrap(), (0.0 + 0.1) / 2.0));
    }

    #[test]
    fn a_joint_matrix_has_one_row_and_only_op() {
        let m = AccuracyMatrix::joint(vec![0.9, 0.6, 0.3]);
        assert!(m.is_complete());
        assert_eq!(m.protocol(), Protocol::Joint);
        assert!(close(m.op().unwrap(), 0.6));
        assert_eq!(
            (m.bwt(), m.fwt(&[0.1, 0.1, 0.1]), m.forgetting()),
            (None, None, None)
        );
        assert!(m.to_table().contains("joint"));
        let mut empty = AccuracyMatrix::for_protocol(3, Protocol::Joint);
        assert!(!empty.is_complete() && empty.op().is_none());
        empty.push_row(vec![0.9, 0.6, 0.3]);
        assert_eq!(empty, m);
        // Reports written before the field existed read as sequential.
        let old: AccuracyMatrix =
            serde_json::from_str(r#"{"num_tasks": 2, "rows": [[0.5, 0.1]]}"#).unwrap();
        assert_eq!(old.protocol(), Protocol::Sequential);
    }

    #[test]
    fn partial_matrix_uses_last_finished_row() {
        let mut m = AccuracyMatrix::new(3);
        assert_eq!(m.op(), None);
        m.push_row(vec![0.9, 0.1, 0.2]);
        assert!(close(m.op().unwrap(), 0.9));
        assert_eq!(m.bwt(), None, "BWT needs two tasks");
        assert_eq!(m.forgetting(), None);
        m.push_row(vec![0.6, 0.8, 0.3]);
        assert!(close(m.op().unwrap(), 0.7));
        assert!(close(m.bwt().unwrap(), -0.3));
        assert!(!m.is_complete());
    }

    #[test]
    fn no_forgetting_gives_zero_bwt() {
        let m = AccuracyMatrix::from_rows(vec![vec![0.8, 0.0], vec![0.8, 0.7]]);
        assert!(close(m.bwt().unwrap(), 0.0));
        assert!(close(m.forgetting().unwrap(), 0.0));
    }

    #[test]
    fn json_round_trip() {
        let m = hand();
        let json = serde_json::to_string(&m).unwrap();
        let back: AccuracyMatrix = serde_json::from_str(&json).unwrap();
        assert_eq!(m, back);
    }

    #[test]
    fn table_shows_percentages() {
        let table = hand().to_table();
        assert!(table.contains("90.0"), "{table}");
        assert_eq!(table.lines().count(), 4);
    }
}
