CREATE TABLE typed (
  id NUMBER(18, 0) NOT NULL,
  big NUMBER(38, 0),
  amount NUMBER(12, 2),
  precise NUMBER(38, 10),
  ratio FLOAT,
  label VARCHAR,
  flag BOOLEAN,
  day DATE,
  at_time TIME,
  ntz TIMESTAMP_NTZ,
  ltz TIMESTAMP_LTZ,
  tz TIMESTAMP_TZ,
  bytes BINARY,
  doc VARIANT,
  items ARRAY,
  props OBJECT
);
INSERT INTO typed SELECT 1, 9223372036854775807, 1234567890.12, -1234567890.0123456789, 1.5, 'plain', true, '2024-02-29', '12:34:56.789', '2024-03-10 02:30:00.123456', '2024-01-01 00:00:00'::timestamp_ltz, '2021-06-30 23:59:59.5'::timestamp_tz, to_binary('ABCD', 'HEX'), parse_json('{"a": [1, 2]}'), parse_json('[1, "two"]'), parse_json('{"k": null}');
INSERT INTO typed SELECT 2, -5, -0.01, 0, -2.25, 'it''s a \\ backslash, é and 日本', false, '1970-01-01', '00:00:00', '1900-01-01 00:00:00', '1999-12-31 23:59:59.999'::timestamp_ltz, '1970-01-01 00:00:00'::timestamp_tz, to_binary('', 'HEX'), parse_json('"text"'), parse_json('[]'), parse_json('{}');
INSERT INTO typed (id) VALUES (3);
CREATE TABLE "MixedCase" ("Id" NUMBER(18, 0), "Label" VARCHAR);
INSERT INTO "MixedCase" VALUES (1, 'one');
CREATE TABLE hold_me (x NUMBER(18, 0));
INSERT INTO hold_me VALUES (1)
