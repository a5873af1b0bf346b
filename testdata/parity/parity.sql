-- The parity corpus: each statement runs through Sluice's HTTP path and through a plain
-- DataFusion SessionContext over the same Parquet files (src/tests/parity.rs); the answers
-- must be equal. Directives in the comment lines just before a statement:
--   -- shape            nondeterministic: compare column names, types and row count only
--   -- params: JSON     bind these through Sluice; the reference gets them as literals
-- A statement ends with ';' at the end of a line.

SELECT * FROM nation ORDER BY n_nationkey;

SELECT * FROM region;

SELECT n_name, n_regionkey FROM nation WHERE n_regionkey = 1;

SELECT count(*) FROM lineitem;

SELECT count(*) FROM orders WHERE o_orderdate >= DATE '1995-01-01';

SELECT o_orderkey, o_totalprice FROM orders WHERE o_totalprice > 400000;

SELECT l_orderkey, l_linenumber FROM lineitem WHERE l_quantity BETWEEN 10 AND 11 AND l_discount = 0.05;

SELECT c_name FROM customer WHERE c_acctbal < -900 ORDER BY c_name;

SELECT DISTINCT l_returnflag, l_linestatus FROM lineitem;

SELECT p_brand, count(*) FROM part GROUP BY p_brand ORDER BY 1;

SELECT s_name FROM supplier WHERE s_nationkey IN (1, 2, 3) ORDER BY 1;

SELECT n_name FROM nation WHERE n_name LIKE 'A%';

SELECT n_name FROM nation WHERE n_name NOT LIKE '%A%';

SELECT n_name FROM nation WHERE n_name ILIKE 'a%';

SELECT * FROM nation WHERE n_comment IS NULL;

SELECT * FROM nation WHERE n_comment IS NOT NULL AND n_nationkey < 3;

SELECT o_orderkey FROM orders WHERE o_orderpriority = '1-URGENT' AND o_orderstatus = 'F' AND o_orderkey < 200;

SELECT l_shipmode, sum(l_quantity) FROM lineitem GROUP BY l_shipmode;

SELECT * FROM lineitem WHERE l_orderkey = 1;

SELECT 1;

SELECT 1 AS a, 'x' AS b, NULL AS c, TRUE AS d;

SELECT 1.5, 0.05 * 3, 10 / 4, 10 % 3, -7 / 2;

SELECT CAST(1.5 AS DOUBLE) * 2, 7.0 / 2;

SELECT 2 + 3 * 4 AS a, (2 + 3) * 4 AS b, 2 ^ 10 AS c;

VALUES (1, 'a'), (2, 'b'), (3, NULL);

SELECT * FROM (VALUES (1, 2.5), (2, 3.5)) AS t(a, b) WHERE a > 1;

SELECT n_regionkey FROM nation UNION SELECT r_regionkey FROM region;

SELECT n_regionkey FROM nation UNION ALL SELECT r_regionkey FROM region;

SELECT n_regionkey FROM nation INTERSECT SELECT r_regionkey FROM region WHERE r_regionkey < 3;

SELECT n_nationkey FROM nation EXCEPT SELECT r_regionkey FROM region;

SELECT n_nationkey FROM nation INTERSECT ALL SELECT n_nationkey FROM nation WHERE n_nationkey > 20;

SELECT n_nationkey FROM nation EXCEPT ALL SELECT n_nationkey FROM nation WHERE n_nationkey > 5;

WITH r AS (SELECT * FROM region) SELECT r_name FROM r WHERE r_regionkey > 2;

WITH a AS (SELECT 1 AS x), b AS (SELECT x + 1 AS y FROM a) SELECT * FROM a, b;

WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 10) SELECT sum(n) FROM t;

SELECT n_name, r_name FROM nation JOIN region ON n_regionkey = r_regionkey;

SELECT n_name, r_name FROM nation LEFT JOIN region ON n_regionkey = r_regionkey AND r_regionkey > 2;

SELECT n_name, r_name FROM nation RIGHT JOIN region ON n_regionkey = r_regionkey AND n_nationkey < 3;

SELECT n_name, r_name FROM nation FULL OUTER JOIN region ON n_regionkey = r_regionkey AND n_nationkey < 3 AND r_regionkey < 2;

SELECT count(*) FROM nation CROSS JOIN region;

SELECT n_name FROM nation WHERE EXISTS (SELECT 1 FROM region WHERE r_regionkey = n_regionkey AND r_name = 'ASIA');

SELECT n_name FROM nation WHERE NOT EXISTS (SELECT 1 FROM supplier WHERE s_nationkey = n_nationkey);

SELECT n_name FROM nation WHERE n_regionkey IN (SELECT r_regionkey FROM region WHERE r_name LIKE 'A%');

SELECT n_name FROM nation WHERE n_regionkey NOT IN (SELECT r_regionkey FROM region WHERE r_name LIKE 'A%');

SELECT n_name, (SELECT max(r_name) FROM region WHERE r_regionkey = n_regionkey) AS r FROM nation;

SELECT c_custkey FROM customer WHERE c_acctbal > (SELECT avg(c_acctbal) FROM customer) AND c_custkey < 50;

SELECT * FROM nation n1 JOIN nation n2 ON n1.n_nationkey = n2.n_nationkey + 1 WHERE n1.n_nationkey < 4;

SELECT n_name FROM nation LEFT SEMI JOIN region ON n_regionkey = r_regionkey;

SELECT n_name FROM nation LEFT ANTI JOIN supplier ON n_nationkey = s_nationkey;

SELECT * FROM nation JOIN (SELECT r_regionkey AS n_regionkey, r_name FROM region) r USING (n_regionkey);

SELECT * FROM nation NATURAL JOIN (SELECT n_nationkey, 'x' AS tag FROM nation WHERE n_nationkey < 3) t;

SELECT o_orderpriority, count(*) FROM orders WHERE EXISTS (SELECT * FROM lineitem WHERE l_orderkey = o_orderkey AND l_commitdate < l_receiptdate) GROUP BY o_orderpriority;

SELECT t.a FROM (SELECT n_nationkey AS a FROM nation) t WHERE t.a % 5 = 0;

SELECT * FROM (SELECT * FROM (SELECT * FROM region) a) b;

SELECT n_name FROM nation ORDER BY n_name DESC LIMIT 5;

SELECT n_name FROM nation ORDER BY n_name LIMIT 5 OFFSET 5;

SELECT n_name FROM nation ORDER BY n_regionkey, n_name;

SELECT c_custkey, c_acctbal FROM customer ORDER BY c_acctbal DESC NULLS LAST, c_custkey LIMIT 10;

SELECT n_name FROM nation ORDER BY length(n_name), n_name;

SELECT * FROM nation ORDER BY 1 DESC LIMIT 0;

SELECT o_orderdate, o_orderkey FROM orders ORDER BY o_orderdate, o_orderkey LIMIT 20;

SELECT l_returnflag, count(l_quantity) AS v FROM lineitem GROUP BY l_returnflag ORDER BY l_returnflag;

SELECT l_returnflag, sum(l_quantity) AS v FROM lineitem GROUP BY l_returnflag ORDER BY l_returnflag;

SELECT l_returnflag, avg(l_discount) AS v FROM lineitem GROUP BY l_returnflag ORDER BY l_returnflag;

SELECT l_returnflag, min(l_shipdate) AS v FROM lineitem GROUP BY l_returnflag ORDER BY l_returnflag;

SELECT l_returnflag, max(l_shipdate) AS v FROM lineitem GROUP BY l_returnflag ORDER BY l_returnflag;

SELECT l_returnflag, min(l_comment) AS v FROM lineitem GROUP BY l_returnflag ORDER BY l_returnflag;

SELECT l_returnflag, max(l_comment) AS v FROM lineitem GROUP BY l_returnflag ORDER BY l_returnflag;

SELECT l_returnflag, count(DISTINCT l_suppkey) AS v FROM lineitem GROUP BY l_returnflag ORDER BY l_returnflag;

SELECT l_returnflag, sum(DISTINCT l_linenumber) AS v FROM lineitem GROUP BY l_returnflag ORDER BY l_returnflag;

SELECT l_returnflag, stddev(CAST(l_quantity AS DOUBLE)) AS v FROM lineitem GROUP BY l_returnflag ORDER BY l_returnflag;

SELECT l_returnflag, stddev_pop(CAST(l_quantity AS DOUBLE)) AS v FROM lineitem GROUP BY l_returnflag ORDER BY l_returnflag;

SELECT l_returnflag, var_samp(CAST(l_tax AS DOUBLE)) AS v FROM lineitem GROUP BY l_returnflag ORDER BY l_returnflag;

SELECT l_returnflag, var_pop(CAST(l_tax AS DOUBLE)) AS v FROM lineitem GROUP BY l_returnflag ORDER BY l_returnflag;

SELECT l_returnflag, corr(CAST(l_quantity AS DOUBLE), CAST(l_extendedprice AS DOUBLE)) AS v FROM lineitem GROUP BY l_returnflag ORDER BY l_returnflag;

SELECT l_returnflag, covar_samp(CAST(l_quantity AS DOUBLE), CAST(l_extendedprice AS DOUBLE)) AS v FROM lineitem GROUP BY l_returnflag ORDER BY l_returnflag;

SELECT l_returnflag, covar_pop(CAST(l_quantity AS DOUBLE), CAST(l_extendedprice AS DOUBLE)) AS v FROM lineitem GROUP BY l_returnflag ORDER BY l_returnflag;

SELECT l_returnflag, regr_slope(CAST(l_extendedprice AS DOUBLE), CAST(l_quantity AS DOUBLE)) AS v FROM lineitem GROUP BY l_returnflag ORDER BY l_returnflag;

SELECT l_returnflag, regr_intercept(CAST(l_extendedprice AS DOUBLE), CAST(l_quantity AS DOUBLE)) AS v FROM lineitem GROUP BY l_returnflag ORDER BY l_returnflag;

SELECT l_returnflag, bool_and(l_quantity > 0) AS v FROM lineitem GROUP BY l_returnflag ORDER BY l_returnflag;

SELECT l_returnflag, bool_or(l_quantity > 49) AS v FROM lineitem GROUP BY l_returnflag ORDER BY l_returnflag;

SELECT l_returnflag, bit_and(l_linenumber) AS v FROM lineitem GROUP BY l_returnflag ORDER BY l_returnflag;

SELECT l_returnflag, bit_or(l_linenumber) AS v FROM lineitem GROUP BY l_returnflag ORDER BY l_returnflag;

SELECT l_returnflag, bit_xor(l_linenumber) AS v FROM lineitem GROUP BY l_returnflag ORDER BY l_returnflag;

SELECT l_returnflag, approx_distinct(l_orderkey) AS v FROM lineitem GROUP BY l_returnflag ORDER BY l_returnflag;

SELECT l_returnflag, median(l_quantity) AS v FROM lineitem GROUP BY l_returnflag ORDER BY l_returnflag;

SELECT l_returnflag, first_value(l_orderkey ORDER BY l_orderkey) AS v FROM lineitem GROUP BY l_returnflag ORDER BY l_returnflag;

SELECT l_returnflag, last_value(l_orderkey ORDER BY l_orderkey) AS v FROM lineitem GROUP BY l_returnflag ORDER BY l_returnflag;

SELECT l_returnflag, array_agg(DISTINCT l_returnflag ORDER BY l_returnflag) AS v FROM lineitem GROUP BY l_returnflag ORDER BY l_returnflag;

SELECT l_returnflag, string_agg(DISTINCT l_shipmode, ',' ORDER BY l_shipmode) AS v FROM lineitem GROUP BY l_returnflag ORDER BY l_returnflag;

SELECT l_returnflag, count(*) FILTER (WHERE l_discount > 0.05) AS v FROM lineitem GROUP BY l_returnflag ORDER BY l_returnflag;

SELECT l_returnflag, sum(l_extendedprice * (1 - l_discount)) AS v FROM lineitem GROUP BY l_returnflag ORDER BY l_returnflag;

SELECT l_returnflag, nth_value(l_orderkey, 2 ORDER BY l_orderkey) AS v FROM lineitem GROUP BY l_returnflag ORDER BY l_returnflag;

SELECT l_returnflag, approx_percentile_cont(0.5) WITHIN GROUP (ORDER BY l_quantity) AS v FROM lineitem GROUP BY l_returnflag ORDER BY l_returnflag;

SELECT l_returnflag, percentile_cont(0.25) WITHIN GROUP (ORDER BY CAST(l_quantity AS DOUBLE)) AS v FROM lineitem GROUP BY l_returnflag ORDER BY l_returnflag;

SELECT l_returnflag, grouping(l_returnflag) FROM lineitem GROUP BY ROLLUP (l_returnflag) ORDER BY 1;

SELECT count(*), sum(o_totalprice), avg(o_totalprice) FROM orders;

SELECT o_orderstatus, o_orderpriority, count(*) FROM orders GROUP BY ROLLUP (o_orderstatus, o_orderpriority) ORDER BY 1, 2;

SELECT o_orderstatus, o_orderpriority, count(*) FROM orders GROUP BY CUBE (o_orderstatus, o_orderpriority) ORDER BY 1, 2;

SELECT o_orderstatus, o_orderpriority, count(*) FROM orders GROUP BY GROUPING SETS ((o_orderstatus), (o_orderpriority), ()) ORDER BY 1, 2;

SELECT n_regionkey, count(*) FROM nation GROUP BY n_regionkey HAVING count(*) > 4;

SELECT count(*) FROM nation WHERE false;

SELECT sum(n_nationkey), max(n_name) FROM nation WHERE n_nationkey > 100;

SELECT l_returnflag, l_linestatus, sum(l_quantity) AS sum_qty, sum(l_extendedprice) AS sum_base_price, sum(l_extendedprice * (1 - l_discount)) AS sum_disc_price, sum(l_extendedprice * (1 - l_discount) * (1 + l_tax)) AS sum_charge, avg(l_quantity) AS avg_qty, avg(l_extendedprice) AS avg_price, avg(l_discount) AS avg_disc, count(*) AS count_order FROM lineitem WHERE l_shipdate <= DATE '1998-12-01' - INTERVAL '90' DAY GROUP BY l_returnflag, l_linestatus ORDER BY l_returnflag, l_linestatus;

SELECT sum(l_extendedprice * l_discount) AS revenue FROM lineitem WHERE l_shipdate >= DATE '1994-01-01' AND l_shipdate < DATE '1995-01-01' AND l_discount BETWEEN 0.05 AND 0.07 AND l_quantity < 24;

SELECT c_mktsegment, count(DISTINCT c_nationkey), min(c_acctbal), max(c_acctbal) FROM customer GROUP BY 1 ORDER BY 1;

SELECT n_nationkey, n_name, row_number() OVER (ORDER BY n_nationkey) AS w FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, n_name, rank() OVER (PARTITION BY n_regionkey ORDER BY n_name) AS w FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, n_name, dense_rank() OVER (ORDER BY n_regionkey) AS w FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, n_name, percent_rank() OVER (ORDER BY n_nationkey) AS w FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, n_name, cume_dist() OVER (ORDER BY n_regionkey) AS w FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, n_name, ntile(4) OVER (ORDER BY n_nationkey) AS w FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, n_name, lag(n_name) OVER (ORDER BY n_nationkey) AS w FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, n_name, lead(n_name, 2, 'none') OVER (ORDER BY n_nationkey) AS w FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, n_name, first_value(n_name) OVER (PARTITION BY n_regionkey ORDER BY n_nationkey) AS w FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, n_name, last_value(n_name) OVER (PARTITION BY n_regionkey ORDER BY n_nationkey ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS w FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, n_name, nth_value(n_name, 2) OVER (PARTITION BY n_regionkey ORDER BY n_nationkey) AS w FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, n_name, sum(n_nationkey) OVER (PARTITION BY n_regionkey) AS w FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, n_name, sum(n_nationkey) OVER (ORDER BY n_nationkey ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) AS w FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, n_name, avg(n_nationkey) OVER (ORDER BY n_nationkey RANGE BETWEEN 3 PRECEDING AND 3 FOLLOWING) AS w FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, n_name, count(*) OVER () AS w FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, n_name, max(n_name) OVER (PARTITION BY n_regionkey) AS w FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, n_name, min(n_nationkey) OVER (ORDER BY n_nationkey DESC) AS w FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, n_name, sum(n_nationkey) OVER (ORDER BY n_regionkey GROUPS BETWEEN 1 PRECEDING AND CURRENT ROW) AS w FROM nation ORDER BY n_nationkey;

SELECT o_custkey, o_orderkey, sum(o_totalprice) OVER (PARTITION BY o_custkey ORDER BY o_orderkey) FROM orders WHERE o_custkey < 20 ORDER BY 1, 2;

SELECT n_name FROM (SELECT n_name, row_number() OVER (PARTITION BY n_regionkey ORDER BY n_name) AS rn FROM nation) WHERE rn = 1 ORDER BY 1;

SELECT n_nationkey, upper(n_name) AS v FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, lower(n_name) AS v FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, length(n_name) AS v FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, char_length(n_name) AS v FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, octet_length(n_name) AS v FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, bit_length(n_name) AS v FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, concat(n_name, '-', n_nationkey) AS v FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, concat_ws('|', n_name, n_regionkey) AS v FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, n_name || '!' AS v FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, substr(n_name, 2, 3) AS v FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, substring(n_name FROM 2 FOR 2) AS v FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, left(n_name, 3) AS v FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, right(n_name, 2) AS v FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, lpad(n_name, 12, '*') AS v FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, rpad(n_name, 12, '.') AS v FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, trim('  x  ') AS v FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, ltrim('xxabc', 'x') AS v FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, rtrim('abcyy', 'y') AS v FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, btrim('zzabczz', 'z') AS v FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, replace(n_name, 'A', 'a') AS v FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, translate(n_name, 'AE', 'ae') AS v FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, reverse(n_name) AS v FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, repeat(n_name, 2) AS v FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, split_part(n_comment, ' ', 2) AS v FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, strpos(n_name, 'A') AS v FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, position('A' IN n_name) AS v FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, starts_with(n_name, 'A') AS v FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, ends_with(n_name, 'A') AS v FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, initcap(lower(n_name)) AS v FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, ascii(n_name) AS v FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, chr(65 + n_nationkey) AS v FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, to_hex(n_nationkey * 255) AS v FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, uuid() IS NOT NULL AS v FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, levenshtein(n_name, 'CHINA') AS v FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, overlay(n_name PLACING 'XX' FROM 2 FOR 1) AS v FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, find_in_set(n_name, 'CHINA,JAPAN,INDIA') AS v FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, contains(n_comment, 'the') AS v FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, substr_index(n_comment, ' ', 2) AS v FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, encode(n_name, 'base64') AS v FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, decode(encode(n_name, 'hex'), 'hex') AS v FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, encode(n_name, 'hex') AS v FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, string_to_array(n_comment, ' ') AS v FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, nullif(n_name, 'CHINA') AS v FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, coalesce(NULL, n_name) AS v FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, greatest(n_nationkey, 10) AS v FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, least(n_nationkey, 10) AS v FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, regexp_like(n_name, '^[A-C]') AS v FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, regexp_match(n_comment, '([a-z]+) ([a-z]+)') AS v FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, regexp_replace(n_name, '[AEIOU]', '_', 'g') AS v FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, regexp_count(n_comment, 'e') AS v FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, n_name ~ '^I' AS v FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, n_name !~ 'A' AS v FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, n_name ~* '^i' AS v FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, regexp_instr(n_comment, 'the') AS v FROM nation ORDER BY n_nationkey;

SELECT n_nationkey, regexp_match(n_comment, '[a-z]+') AS v FROM nation ORDER BY n_nationkey;

SELECT abs(-5.5), ceil(4.2), floor(-4.2), round(3.14159, 2);

SELECT round(2.5), trunc(3.789, 1), sqrt(16.0), cbrt(27.0);

SELECT power(2, 10), exp(1.0), ln(10.0), log10(1000.0);

SELECT log2(8.0), log(2.0, 64.0), sin(0.5), cos(0.5);

SELECT tan(0.5), asin(0.5), acos(0.5), atan(0.5);

SELECT atan2(1.0, 2.0), sinh(1.0), cosh(1.0), tanh(1.0);

SELECT degrees(pi()), radians(180.0), signum(-3), gcd(12, 18);

SELECT lcm(4, 6), factorial(10), isnan(CAST('NaN' AS DOUBLE)), iszero(0.0);

SELECT nanvl(CAST('NaN' AS DOUBLE), 1.0), CAST(7 AS DOUBLE) / 0, -CAST(7 AS DOUBLE) / 0, 5 & 3;

SELECT 5 | 3, 5 ^ 3, 1 << 4, 256 >> 2;

SELECT p_partkey, round(p_retailprice * 1.1, 2), ceil(p_retailprice), floor(p_retailprice), abs(p_retailprice - 1500) FROM part WHERE p_partkey < 30 ORDER BY 1;

SELECT l_orderkey, l_extendedprice * (1 - l_discount) * (1 + l_tax) FROM lineitem WHERE l_orderkey < 10 ORDER BY 1, 2;

-- shape
SELECT random() < 1.0, random() >= 0.0;

-- shape
SELECT random();

SELECT n_nationkey, CASE WHEN n_regionkey = 0 THEN 'africa' WHEN n_regionkey = 1 THEN 'america' ELSE 'other' END FROM nation ORDER BY 1;

SELECT n_nationkey, CASE n_regionkey WHEN 2 THEN 'asia' ELSE NULL END FROM nation ORDER BY 1;

SELECT coalesce(NULL, NULL, 3), nullif(1, 1), nullif(1, 2), nvl(NULL, 'x'), nvl2(1, 'a', 'b'), ifnull(NULL, 5);

SELECT CAST('42' AS INT), CAST(42 AS VARCHAR), CAST('2020-02-29' AS DATE), CAST('1.25' AS DECIMAL(5,2)), CAST(3.9 AS INT);

SELECT TRY_CAST('x' AS INT), TRY_CAST('12' AS BIGINT);

SELECT arrow_typeof(1), arrow_typeof(1.5), arrow_typeof('a'), arrow_typeof(now()), arrow_typeof([1,2]);

SELECT arrow_cast(1, 'Int8'), arrow_cast('2020-01-01', 'Date32');

SELECT CAST(l_quantity AS BIGINT), CAST(l_shipdate AS VARCHAR) FROM lineitem WHERE l_orderkey = 1 ORDER BY 1, 2;

SELECT 1 IN (1, 2), 3 NOT IN (1, 2), NULL IN (1), 2 BETWEEN 1 AND 3, 'b' BETWEEN 'a' AND 'c';

SELECT true AND NULL, false AND NULL, true OR NULL, NOT NULL::boolean, NULL IS NULL, 1 IS DISTINCT FROM NULL, NULL IS NOT DISTINCT FROM NULL;

SELECT n_name IS TRUE FROM (SELECT n_nationkey > 5 AS n_name FROM nation) ORDER BY 1;

SELECT CAST(o_totalprice AS DOUBLE) > 1.5e5 AS big, count(*) FROM orders GROUP BY 1 ORDER BY 1;

SELECT o_orderkey FROM orders WHERE CAST(o_totalprice AS DOUBLE) BETWEEN 1000.5 AND 2000.5 ORDER BY 1;

SELECT count(*) FROM lineitem WHERE CAST(l_discount AS DOUBLE) IN (0.05, 0.06);

SELECT o_orderkey, date_part('year', o_orderdate) AS v FROM orders WHERE o_orderkey < 40 ORDER BY o_orderkey;

SELECT o_orderkey, extract(month FROM o_orderdate) AS v FROM orders WHERE o_orderkey < 40 ORDER BY o_orderkey;

SELECT o_orderkey, date_trunc('month', o_orderdate) AS v FROM orders WHERE o_orderkey < 40 ORDER BY o_orderkey;

SELECT o_orderkey, o_orderdate + INTERVAL '1 month' AS v FROM orders WHERE o_orderkey < 40 ORDER BY o_orderkey;

SELECT o_orderkey, o_orderdate - INTERVAL '10 days' AS v FROM orders WHERE o_orderkey < 40 ORDER BY o_orderkey;

SELECT o_orderkey, o_orderdate - DATE '1992-01-01' AS v FROM orders WHERE o_orderkey < 40 ORDER BY o_orderkey;

SELECT o_orderkey, to_char(o_orderdate, '%Y/%m/%d') AS v FROM orders WHERE o_orderkey < 40 ORDER BY o_orderkey;

SELECT o_orderkey, date_bin(INTERVAL '7 days', CAST(o_orderdate AS TIMESTAMP), TIMESTAMP '1992-01-01') AS v FROM orders WHERE o_orderkey < 40 ORDER BY o_orderkey;

SELECT o_orderkey, extract(dow FROM o_orderdate) AS v FROM orders WHERE o_orderkey < 40 ORDER BY o_orderkey;

SELECT o_orderkey, extract(doy FROM o_orderdate) AS v FROM orders WHERE o_orderkey < 40 ORDER BY o_orderkey;

SELECT o_orderkey, extract(quarter FROM o_orderdate) AS v FROM orders WHERE o_orderkey < 40 ORDER BY o_orderkey;

SELECT o_orderkey, extract(week FROM o_orderdate) AS v FROM orders WHERE o_orderkey < 40 ORDER BY o_orderkey;

SELECT o_orderkey, CAST(o_orderdate AS TIMESTAMP) AS v FROM orders WHERE o_orderkey < 40 ORDER BY o_orderkey;

SELECT o_orderkey, make_date(1995, 3, o_shippriority + 1) AS v FROM orders WHERE o_orderkey < 40 ORDER BY o_orderkey;

SELECT o_orderkey, to_date('1995-03-15') AS v FROM orders WHERE o_orderkey < 40 ORDER BY o_orderkey;

SELECT o_orderkey, date_part('epoch', CAST(o_orderdate AS TIMESTAMP)) AS v FROM orders WHERE o_orderkey < 40 ORDER BY o_orderkey;

SELECT o_orderkey, to_unixtime(CAST(o_orderdate AS TIMESTAMP)) AS v FROM orders WHERE o_orderkey < 40 ORDER BY o_orderkey;

SELECT to_timestamp('2020-09-08T12:00:00Z'), to_timestamp_seconds(1599566400), to_timestamp_millis(1599566400000), to_timestamp_micros(1599566400000000);

SELECT from_unixtime(1599566400), to_timestamp(1599566400);

SELECT TIMESTAMP '2020-01-01 10:00:00' + INTERVAL '90 minutes', TIMESTAMP '2020-03-01 00:00:00' - TIMESTAMP '2020-02-01 00:00:00';

SELECT date_trunc('hour', TIMESTAMP '2020-01-01 10:37:12'), date_part('minute', TIMESTAMP '2020-01-01 10:37:12');

SELECT INTERVAL '1 year 2 months 3 days', INTERVAL '36 hours', INTERVAL '1' MONTH;

SELECT CAST('2020-01-01T00:00:00+02:00' AS TIMESTAMP WITH TIME ZONE), arrow_cast(TIMESTAMP '2020-01-01 00:00:00', 'Timestamp(Second, None)');

SELECT DATE '2024-02-29' + INTERVAL '1 year', DATE '2020-01-31' + INTERVAL '1 month';

SELECT count(*) FROM orders WHERE o_orderdate BETWEEN DATE '1996-01-01' AND DATE '1996-12-31';

SELECT count(*) FROM lineitem WHERE l_receiptdate > l_commitdate + INTERVAL '10 days';

SELECT make_time(12, 30, 15);

SELECT date_part('year', now()) >= 2025;

SELECT to_char(DATE '2020-01-01', '%d.%m.%Y');

-- shape
SELECT now();

-- shape
SELECT current_date;

-- shape
SELECT current_time;

-- shape
SELECT current_timestamp;

-- shape
SELECT now(), now() - INTERVAL '1 day';

-- shape
SELECT count(*) FROM orders WHERE o_orderdate > now() - INTERVAL '7 days';

-- shape
SELECT count(*) FROM orders WHERE o_orderdate < current_date;

-- shape
SELECT date_trunc('day', now()), extract(year FROM current_date);

-- shape
SELECT uuid();

-- shape
SELECT o_orderkey, random() FROM orders WHERE o_orderkey < 10;

SELECT [1, 2, 3], make_array(1, 2), array_length([1, 2, 3]), cardinality([1, 2]);

SELECT array_append([1, 2], 3), array_prepend(0, [1]), array_concat([1], [2, 3]), array_has([1, 2], 2);

SELECT array_element([10, 20, 30], 2), [10, 20, 30][1], array_slice([1, 2, 3, 4], 2, 3), array_position([5, 6, 7], 6);

SELECT array_remove([1, 2, 1], 1), array_distinct([1, 1, 2]), array_sort([3, 1, 2]), array_reverse([1, 2, 3]);

SELECT array_to_string([1, 2, 3], '-'), array_repeat('x', 3), array_max([4, 9, 2]), array_min([4, 9, 2]);

SELECT flatten([[1, 2], [3]]), array_union([1, 2], [2, 3]), array_intersect([1, 2], [2, 3]), array_except([1, 2], [2]);

SELECT unnest([1, 2, 3]) AS x;

SELECT n_nationkey, unnest(string_to_array(n_name, 'A')) FROM nation WHERE n_nationkey < 5 ORDER BY 1, 2;

SELECT named_struct('a', 1, 'b', 'x'), struct(1, 'y'), get_field(named_struct('a', 5), 'a');

SELECT map(['a', 'b'], [1, 2]), map_keys(map(['a'], [1])), map_values(map(['a'], [1]));

SELECT map_extract(map(['k1', 'k2'], [10, 20]), 'k2');

SELECT range(5), range(2, 10, 3), generate_series(1, 3);

SELECT array_agg(n_name ORDER BY n_name) FROM nation WHERE n_regionkey = 0;

SELECT n_regionkey, array_agg(n_nationkey ORDER BY n_nationkey) FROM nation GROUP BY 1 ORDER BY 1;

SELECT array_has_any([1, 2], [3, 2]), array_has_all([1, 2, 3], [1, 3]), array_empty([]), array_ndims([[1]]);

SELECT string_to_array('a,b,,c', ','), array_pop_back([1, 2, 3]), array_pop_front([1, 2, 3]);

SELECT * FROM generate_series(1, 10);

SELECT sum(value) FROM generate_series(1, 100000);

SELECT * FROM generate_series(10, 1, -3);

SELECT * FROM range(0, 20, 5);

SELECT count(*) FROM generate_series(1, 5) a, generate_series(1, 4) b;

SELECT value % 7 AS k, count(*) FROM generate_series(1, 1000) GROUP BY 1 ORDER BY 1;

SELECT * FROM generate_series(DATE '2020-01-01', DATE '2020-01-10', INTERVAL '3 days');

SELECT n_name FROM nation JOIN generate_series(1, 3) g ON n_nationkey = g.value ORDER BY 1;

SHOW TABLES;

SHOW COLUMNS FROM nation;

SHOW COLUMNS FROM local.public.lineitem;

DESCRIBE nation;

DESC region;

DESCRIBE lineitem;

SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1;

SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'orders' ORDER BY ordinal_position;

SELECT count(*) FROM information_schema.columns WHERE table_schema = 'public';

SHOW datafusion.execution.batch_size;

-- shape
EXPLAIN SELECT 1;

-- shape
EXPLAIN SELECT * FROM nation WHERE n_regionkey = 1;

-- shape
EXPLAIN VERBOSE SELECT count(*) FROM lineitem;

-- shape
EXPLAIN ANALYZE SELECT count(*) FROM orders;

-- shape
EXPLAIN ANALYZE VERBOSE SELECT n_regionkey, count(*) FROM nation GROUP BY 1;

-- shape
EXPLAIN FORMAT INDENT SELECT * FROM region;

-- shape
EXPLAIN FORMAT TREE SELECT * FROM region;

-- shape
EXPLAIN FORMAT PGJSON SELECT * FROM region;

-- shape
EXPLAIN FORMAT GRAPHVIZ SELECT * FROM region;

-- shape
EXPLAIN SELECT n_name FROM nation JOIN region ON n_regionkey = r_regionkey;

-- params: [7]
SELECT n_name FROM nation WHERE n_nationkey = $1;

-- params: ["GERMANY"]
SELECT n_name FROM nation WHERE n_name = $1;

-- params: ["1995-01-01"]
SELECT count(*) FROM orders WHERE o_orderdate >= $1;

-- params: [100000.5]
SELECT count(*) FROM orders WHERE o_totalprice > $1;

-- params: ["0.05"]
SELECT count(*) FROM lineitem WHERE l_discount = $1;

-- params: [3, 6]
SELECT n_name FROM nation WHERE n_nationkey BETWEEN $1 AND $2 ORDER BY 1;

-- params: {"k": 5}
SELECT n_name FROM nation WHERE n_nationkey = :k;

-- params: {"p": "%IA"}
SELECT n_name FROM nation WHERE n_name LIKE $p ORDER BY 1;

-- params: [3]
SELECT count(*) FROM lineitem WHERE l_linenumber = $1;

-- params: [true]
SELECT count(*) FROM nation WHERE (n_nationkey > 5) = $1;

-- params: ["1993-06-01", 40]
SELECT count(*) FROM lineitem WHERE l_shipdate < $1 AND l_quantity > $2;

-- params: [41]
SELECT $1 + 1;

-- params: [1, 2, 3]
SELECT o_orderkey FROM orders WHERE o_orderkey IN ($1, $2, $3) ORDER BY 1;

-- params: [-500]
SELECT count(*) FROM customer WHERE c_acctbal < $1;

SELECT "n_name" FROM "nation" WHERE "n_nationkey" = 1;

SELECT N_NAME FROM NATION WHERE N_NATIONKEY = 2;

SELECT n.n_name AS "Name", r.r_name "Region" FROM nation AS n, region r WHERE n.n_regionkey = r.r_regionkey ORDER BY 1;

SELECT local.public.nation.n_name FROM local.public.nation WHERE n_nationkey = 3;

SELECT 'it''s', 'a\b', E'tab\there';

SELECT count(*) AS "count(*)" FROM region;

SELECT n_nationkey FROM nation WHERE n_nationkey = 1 OR n_nationkey = 2 OR n_nationkey = 3 ORDER BY 1;

SELECT CASE WHEN count(*) > 0 THEN 'rows' END FROM nation;

SELECT max(n_nationkey) - min(n_nationkey) FROM nation;

SELECT n_regionkey, sum(n_nationkey) FILTER (WHERE n_name LIKE '%A%') FROM nation GROUP BY 1 ORDER BY 1;

SELECT digest IS NULL FROM (SELECT NULL AS digest);

SELECT sum(l_quantity) FROM lineitem WHERE l_orderkey IN (SELECT o_orderkey FROM orders WHERE o_totalprice > 300000);

SELECT ps_partkey, sum(ps_supplycost * ps_availqty) AS value FROM partsupp GROUP BY ps_partkey HAVING sum(ps_supplycost * ps_availqty) > 3000000 ORDER BY value DESC;

SELECT s_name, count(*) FROM supplier JOIN nation ON s_nationkey = n_nationkey JOIN region ON n_regionkey = r_regionkey WHERE r_name = 'EUROPE' GROUP BY s_name ORDER BY 2 DESC, 1 LIMIT 10;
