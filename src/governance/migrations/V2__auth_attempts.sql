-- Failed authentications are recorded in aggregate: one row per client address and outcome per
-- window, with the number of attempts it stands for (1 for every other row).
ALTER TABLE sluice_audit ADD COLUMN attempts bigint NOT NULL DEFAULT 1;
