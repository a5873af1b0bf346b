//! Targeted cases: see `testdata/federation/cases.sql`.
