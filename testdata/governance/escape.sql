# The grant-escape corpus (src/tests/governance/grants.rs). A reader key granted
# `pg.public.orders*` runs each line. Lines starting `ok:` must answer, with only granted data;
# every other line must be refused (400, 404 or 501) and send nothing to PostgreSQL. Lines
# starting `#` are comments; every other line is one statement, as sent.
#
# Granted: pg.public.orders, pg.public.orders_archive.
# Denied: pg.public.customer, pg.public.secrets, pg.public.order_notes, pg.hr.salaries, and
# everything in the embedded `local` catalog (nation, lineitem, ...).

# Direct names, qualified and not
SELECT * FROM pg.public.customer
SELECT * FROM customer
SELECT * FROM public.customer
SELECT c_name FROM pg.public.customer WHERE c_id = 1
SELECT count(*) FROM pg.public.customer
SELECT * FROM pg.public.secrets
SELECT * FROM pg.public.order_notes
SELECT * FROM pg.hr.salaries
SELECT * FROM local.public.nation
SELECT * FROM nation
SELECT * FROM lineitem LIMIT 1
SELECT * FROM pg.pg_catalog.pg_tables
SELECT * FROM pg.public.pg_stat_activity
SELECT * FROM pg.public.orders_
ok: SELECT * FROM pg.public.orders
ok: SELECT * FROM pg.public.orders_archive
ok: SELECT o_id FROM pg.public.orders UNION ALL SELECT o_id FROM pg.public.orders_archive

# Quoting and case
SELECT * FROM "pg"."public"."customer"
SELECT * FROM PG.PUBLIC.CUSTOMER
SELECT * FROM Pg.Public.Customer
SELECT * FROM pg.public."CUSTOMER"
SELECT * FROM "PG"."public"."orders"
SELECT * FROM pg."PUBLIC".orders
SELECT * FROM pg.public."ORDERS"
SELECT * FROM "pg".hr."salaries"
SELECT * FROM "pg.public.customer"
SELECT * FROM `pg`.`public`.`customer`
SELECT * FROM [pg].[public].[customer]
SELECT * FROM "pg"."public"."customer "
ok: SELECT * FROM "pg"."public"."orders"
ok: SELECT * FROM PG.PUBLIC.ORDERS

# CTEs shadowing or reaching other tables
WITH c AS (SELECT * FROM pg.public.customer) SELECT * FROM c
WITH orders AS (SELECT * FROM pg.public.customer) SELECT * FROM orders
WITH "pg.public.orders" AS (SELECT * FROM pg.public.customer) SELECT * FROM "pg.public.orders"
WITH x AS (SELECT * FROM pg.public.orders) SELECT * FROM x, pg.public.customer
WITH x AS (SELECT * FROM pg.public.orders), y AS (SELECT * FROM pg.hr.salaries) SELECT * FROM x, y
WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT * FROM r, pg.public.customer
WITH a AS (WITH b AS (SELECT * FROM pg.public.secrets) SELECT * FROM b) SELECT * FROM a
ok: WITH customer AS (SELECT * FROM pg.public.orders) SELECT * FROM customer
ok: WITH secrets AS (SELECT o_id FROM pg.public.orders) SELECT count(*) FROM secrets

# Subqueries
SELECT * FROM (SELECT * FROM pg.hr.salaries) t
SELECT * FROM pg.public.orders WHERE o_cust IN (SELECT c_id FROM pg.public.customer)
SELECT * FROM pg.public.orders WHERE EXISTS (SELECT 1 FROM pg.public.secrets)
SELECT * FROM pg.public.orders WHERE NOT EXISTS (SELECT 1 FROM pg.public.secrets WHERE s_id = o_id)
SELECT (SELECT max(s_value) FROM pg.public.secrets) FROM pg.public.orders
SELECT o_id, (SELECT c_name FROM pg.public.customer c WHERE c.c_id = o.o_cust) FROM pg.public.orders o
SELECT * FROM pg.public.orders WHERE o_id = (SELECT c_id FROM pg.public.customer LIMIT 1)
SELECT * FROM pg.public.orders ORDER BY (SELECT count(*) FROM pg.public.customer)
SELECT * FROM pg.public.orders WHERE o_note = (SELECT s_value FROM pg.public.secrets)
SELECT * FROM pg.public.orders WHERE 1 = 1 OR EXISTS (SELECT * FROM pg.public.customer)
SELECT * FROM pg.public.orders WHERE o_id > 0 AND o_cust IN (WITH q AS (SELECT c_id FROM pg.public.customer) SELECT * FROM q)
SELECT * FROM pg.public.orders o WHERE o.o_id IN (SELECT s_id FROM pg.hr.salaries)
SELECT * FROM pg.public.orders GROUP BY o_id, o_cust, o_note HAVING count(*) > (SELECT count(*) FROM pg.public.customer)
SELECT unnest(make_array((SELECT c_name FROM pg.public.customer LIMIT 1)))
SELECT array_agg(c_name) FROM pg.public.customer
ok: SELECT * FROM pg.public.orders WHERE o_id IN (SELECT o_id FROM pg.public.orders_archive)
ok: SELECT (SELECT count(*) FROM pg.public.orders_archive) AS n

# Joins
SELECT * FROM pg.public.orders o JOIN pg.public.customer c ON o.o_cust = c.c_id
SELECT * FROM pg.public.orders o LEFT JOIN pg.public.customer c ON true
SELECT * FROM pg.public.orders o RIGHT JOIN pg.public.secrets s ON o.o_id = s.s_id
SELECT * FROM pg.public.orders o FULL JOIN pg.hr.salaries s ON o.o_id = s.s_id
SELECT * FROM pg.public.orders CROSS JOIN pg.hr.salaries
SELECT * FROM pg.public.orders NATURAL JOIN pg.public.customer
SELECT * FROM pg.public.orders o, pg.public.orders_archive a, pg.hr.salaries s
SELECT * FROM pg.public.orders o JOIN local.public.nation n ON o.o_id = n.n_nationkey
SELECT * FROM pg.public.orders o WHERE o.o_cust IN (SELECT n_nationkey FROM nation)
SELECT * FROM pg.public.orders, LATERAL (SELECT * FROM pg.public.customer) c
ok: SELECT * FROM pg.public.orders o JOIN pg.public.orders_archive a ON o.o_id = a.o_id

# Set operations
SELECT o_id FROM pg.public.orders UNION SELECT c_id FROM pg.public.customer
SELECT o_id FROM pg.public.orders UNION ALL SELECT s_id FROM pg.public.secrets
SELECT o_id FROM pg.public.orders INTERSECT SELECT c_id FROM pg.public.customer
SELECT o_id FROM pg.public.orders EXCEPT SELECT c_id FROM pg.public.customer
SELECT o_id FROM pg.public.orders UNION SELECT n_nationkey FROM nation
(SELECT o_id FROM pg.public.orders) UNION ALL (SELECT s_id FROM pg.hr.salaries ORDER BY 1 LIMIT 1)

# Aliases
SELECT * FROM pg.public.customer AS orders
SELECT orders.* FROM pg.public.customer orders
SELECT * FROM pg.public.customer AS "pg.public.orders"
ok: SELECT * FROM pg.public.orders AS customer

# information_schema and catalog listings (answered from the granted view)
ok: SELECT * FROM information_schema.tables WHERE table_name = 'customer'
ok: SELECT * FROM information_schema.columns WHERE table_name LIKE 'cust%'
ok: SELECT table_catalog, table_schema, table_name FROM information_schema.tables
ok: SELECT * FROM information_schema.tables
ok: SELECT * FROM information_schema.columns
ok: SELECT * FROM information_schema.views
ok: SELECT * FROM information_schema.schemata
ok: SELECT * FROM pg.information_schema.tables
ok: SELECT * FROM "information_schema"."tables"
ok: SELECT * FROM pg.information_schema.columns WHERE table_name = 'customer'
ok: SELECT count(*) FROM information_schema.columns WHERE table_schema = 'hr'
ok: SHOW TABLES
SHOW COLUMNS FROM pg.public.customer
SHOW COLUMNS FROM pg.hr.salaries
DESCRIBE pg.public.customer
DESCRIBE nation
ok: DESCRIBE pg.public.orders

# EXPLAIN
EXPLAIN SELECT * FROM pg.public.customer
EXPLAIN ANALYZE SELECT * FROM pg.public.customer
EXPLAIN VERBOSE SELECT * FROM pg.hr.salaries
EXPLAIN SELECT * FROM pg.public.orders WHERE o_cust IN (SELECT c_id FROM pg.public.customer)
ok: EXPLAIN SELECT * FROM pg.public.orders

# Table functions and file reads
SELECT * FROM read_parquet('testdata/tpch/nation.parquet')
SELECT * FROM 'testdata/tpch/nation.parquet'
SELECT * FROM parquet_metadata('testdata/tpch/nation.parquet')
SELECT * FROM generate_series(1, 3), pg.public.customer
ok: SELECT * FROM generate_series(1, 3)
ok: SELECT * FROM range(3)

# Comments
SELECT * FROM /* pg.public.orders */ pg.public.customer
SELECT * FROM pg.public./**/customer
/* SELECT * FROM pg.public.orders */ SELECT * FROM pg.public.customer
SELECT * FROM pg.public.orders; SELECT * FROM pg.public.customer
SELECT * FROM pg . public . customer -- pg.public.orders
ok: SELECT * FROM pg.public.orders -- ; SELECT * FROM pg.public.customer
ok: SELECT * FROM pg.public.orders /* JOIN pg.public.customer */

# Unicode look-alikes
SELECT * FROM pg.public.сustomer
SELECT * FROM pg.publіc.customer
SELECT * FROM pg.public.ｃｕｓｔｏｍｅｒ
SELECT * FROM pg.public."orders​"
SELECT * FROM ｐｇ.public.orders
SELECT * FROM pg.public."ordеrs"

# Writes and session changes hidden anywhere
WITH x AS (DELETE FROM pg.public.orders RETURNING *) SELECT * FROM x
INSERT INTO pg.public.orders SELECT * FROM pg.public.orders
CREATE VIEW v AS SELECT * FROM pg.public.customer
CREATE TABLE t AS SELECT * FROM pg.public.customer
CREATE EXTERNAL TABLE x STORED AS PARQUET LOCATION 'testdata/tpch/nation.parquet'
COPY (SELECT * FROM pg.public.customer) TO '/tmp/sluice-escape.csv'
SET datafusion.catalog.default_catalog = 'pg'
DROP TABLE pg.public.customer
UPDATE pg.public.orders SET o_id = 1
DELETE FROM pg.public.orders
PREPARE p AS SELECT * FROM pg.public.customer
SELECT * FROM pg.public.customer FOR UPDATE
