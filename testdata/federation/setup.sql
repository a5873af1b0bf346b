-- The targeted cases' data (testdata/federation/cases.sql), in schema fed.
CREATE SCHEMA fed;
