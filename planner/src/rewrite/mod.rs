//! Rewrites Sluice adds to DataFusion's own, one rule per file: of logical plans (floats
//! compared with decimal literals) and of physical plans (operators that multiply rows yield).

mod cooperative;
mod float_comparison;

pub use cooperative::YieldAfterMultipliers;
pub use float_comparison::FloatComparisonRule;
