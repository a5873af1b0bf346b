-- The targeted cases' data (testdata/federation/cases.sql), in schema fed of the first
-- database. Text is under an ICU collation unless said otherwise: its order is not byte
-- order, so anything sent without COLLATE "C" would show.
CREATE SCHEMA fed;
CREATE EXTENSION IF NOT EXISTS citext SCHEMA public;
CREATE COLLATION fed.ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);

CREATE TABLE fed.people (
  id int4 PRIMARY KEY,
  name text COLLATE "und-x-icu",
  team int4,
  score numeric(12, 2),
  big int8,
  small int2,
  ratio float8,
  born date,
  seen timestamptz,
  local_ts timestamp,
  active bool,
  tag public.citext,
  ci_name text COLLATE fed.ci,
  code char(3),
  "Mixed Case" text COLLATE "und-x-icu",
  "select" int4,
  "we""ird name" text,
  pattern text COLLATE "und-x-icu"
);
INSERT INTO fed.people VALUES
 (1, 'alice', 1, 10.50, 1, 1, 1.5, '1990-01-01', '2021-03-14 06:30:00+00', '2021-03-14 01:30:00', true, 'Alice', 'alice', 'ab', 'Mixed One', 1, 'w1', '100%'),
 (2, 'Bob', 1, 20.00, 2, 2, '-0', '1985-05-05', '2021-03-14 07:30:00+00', '2021-03-14 03:30:00', false, 'bob', 'Bob', 'c', 'mixed two', 2, 'w2', 'a_c'),
 (3, 'carol', 2, NULL, 9223372036854775807, 3, 'NaN', '1990-01-01', '2021-11-07 05:30:00+00', '2021-11-07 01:30:00', NULL, 'CAROL', 'CAROL', NULL, NULL, 3, NULL, 'abc'),
 (4, 'Dave', NULL, 9999999999.99, 5, 4, 0, NULL, '2021-11-07 06:30:00+00', '2021-11-07 01:30:00', true, NULL, 'dave', 'x', 'MIXED', NULL, 'w''4', 'back\slash'),
 (5, 'O''Brien', 3, -9999999999.99, -5, -5, 2.5, '2000-02-29', NULL, NULL, false, 'o''brien', 'o''brien', 'yy', 'mixed', 5, 'w5', 'x_y'),
 (6, 'Zoë', 2, 0.01, 100, 6, -2.5, '1970-01-01', '1970-01-01 00:00:00+00', '1970-01-01 00:00:00', true, 'zoë', 'ZOË', 'z', 'Ärger', 6, 'w6', '50% off'),
 (7, 'eve', 99, 1.00, 7, 7, 1e300, '2020-12-31', '2020-12-31 23:59:59.999999+00', '2020-12-31 23:59:59.999999', false, 'Eve', 'eve', 'e', 'zeta', 7, 'w7', 'it''s'),
 (8, 'Éclair', 1, 2.50, 8, 8, NULL, '1999-12-31', '2000-01-01 00:00:00+00', '2000-01-01 00:00:00', true, 'éclair', 'ÉCLAIR', 'q', 'Zeta', 8, 'w8', '%'),
 (9, 'apple', 3, 3.33, 9, 9, 0.1, '1990-01-01', '2021-03-14 08:00:00+00', '2021-03-14 02:30:00', NULL, 'APPLE', 'apple', 'ap', 'apple', 9, 'w9', '_'),
 (10, 'Apple', NULL, 3.34, 10, 10, 0.2, '1990-01-02', '2021-03-13 23:00:00+00', '2021-03-13 18:00:00', true, 'apple', 'Apple', 'AP', 'Apple', 10, 'w10', 'a\_c'),
 (11, 'b', 4, -0.01, 11, 11, -1e-300, '1990-01-03', '2021-11-07 07:00:00+00', '2021-11-07 02:00:00', false, 'B', 'b', 'b', 'b', 11, 'w11', 'tab	here'),
 (12, '', 2, 0.00, 12, 12, 3.0, '1990-01-04', '2021-06-30 12:00:00+00', '2021-06-30 08:00:00', true, '', '', '', '', 12, '', '');

CREATE TABLE fed.teams (
  id int4,
  label text COLLATE "und-x-icu",
  parent int4,
  budget numeric(38, 0)
);
INSERT INTO fed.teams VALUES
 (1, 'Engineering', NULL, 1000),
 (2, 'engineering', 1, 99999999999999999999999999999999999999),
 (3, 'Sales', NULL, 0),
 (NULL, 'Orphans', NULL, NULL),
 (4, 'Ops', 3, -1);

CREATE TABLE fed.events (
  id int4,
  person int4,
  at timestamptz,
  kind text COLLATE "und-x-icu",
  amount numeric(12, 2)
);
INSERT INTO fed.events VALUES
 (1, 1, '2021-03-14 06:00:00+00', 'login', 1.10),
 (2, 1, '2021-03-14 07:00:00+00', 'buy', 20.00),
 (3, 2, '2021-03-14 07:00:00+00', 'login', NULL),
 (4, 3, '2021-11-07 05:59:59+00', 'buy', 5.55),
 (5, 3, '2021-11-07 06:00:00+00', 'Buy', 5.55),
 (6, 4, NULL, 'login', 0.00),
 (7, NULL, '2021-01-01 00:00:00+00', 'orphan', 9.99),
 (8, 6, '2021-06-30 12:00:00+00', 'buy', 100.00),
 (9, 6, '2021-06-30 12:00:00+00', 'login', -1.00),
 (10, 12, '2021-07-01 00:00:00+00', 'buy', 3.00);

CREATE TABLE fed."Odd Table" ("Key" int4, "Value" text COLLATE "und-x-icu", "from" int4);
INSERT INTO fed."Odd Table" VALUES (1, 'one', 10), (2, 'Two', 20), (3, NULL, NULL);

CREATE TABLE fed.wide (id int4, d numeric(38, 10), i int8);
INSERT INTO fed.wide VALUES
 (1, 9999999999999999999999999999.9999999999, 9223372036854775807),
 (2, 9999999999999999999999999999.9999999999, 1),
 (3, -0.0000000001, -9223372036854775808),
 (4, NULL, NULL);
