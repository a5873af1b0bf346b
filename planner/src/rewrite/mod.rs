//! Rewrites of logical plans Sluice adds to DataFusion's own, one rule per file.

mod float_comparison;

pub use float_comparison::FloatComparisonRule;
