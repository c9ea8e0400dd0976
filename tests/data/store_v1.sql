-- nbtoolkit store at schema version 1 (frozen; do not regenerate)
BEGIN TRANSACTION;
CREATE TABLE approvals (
	id INTEGER NOT NULL, 
	run_id VARCHAR(32) NOT NULL, 
	"by" VARCHAR(255) NOT NULL, 
	note TEXT DEFAULT '' NOT NULL, 
	created FLOAT NOT NULL, 
	PRIMARY KEY (id)
);
CREATE TABLE artifacts (
	run_id VARCHAR(32) NOT NULL, 
	name VARCHAR(512) NOT NULL, 
	kind VARCHAR(32) NOT NULL, 
	digest VARCHAR(64) NOT NULL, 
	size INTEGER NOT NULL, 
	media_type VARCHAR(128), 
	meta TEXT DEFAULT '{}' NOT NULL, 
	created FLOAT NOT NULL, 
	PRIMARY KEY (run_id, name)
);
CREATE TABLE datasets (
	run_id VARCHAR(32) NOT NULL, 
	path TEXT NOT NULL, 
	source VARCHAR(16) NOT NULL, 
	digest VARCHAR(64) NOT NULL, 
	algo VARCHAR(16) NOT NULL, 
	size INTEGER, 
	PRIMARY KEY (run_id, path, source)
);
CREATE TABLE experiments (
	name VARCHAR(128) NOT NULL, 
	created FLOAT NOT NULL, 
	PRIMARY KEY (name)
);
INSERT INTO "experiments" VALUES('legacy-exp',1700000000.0);
CREATE TABLE exports (
	id INTEGER NOT NULL, 
	run_id VARCHAR(32) NOT NULL, 
	model VARCHAR(128) NOT NULL, 
	version VARCHAR(64) NOT NULL, 
	path TEXT NOT NULL, 
	created FLOAT NOT NULL, 
	manifest_sha256 VARCHAR(64) NOT NULL, 
	forced INTEGER DEFAULT '0' NOT NULL, 
	reason TEXT, 
	extra TEXT DEFAULT '{}' NOT NULL, 
	PRIMARY KEY (id)
);
CREATE TABLE locks (
	lock_hash VARCHAR(64) NOT NULL, 
	created FLOAT NOT NULL, 
	body TEXT NOT NULL, 
	PRIMARY KEY (lock_hash)
);
CREATE TABLE meta (
	"key" VARCHAR(64) NOT NULL, 
	value TEXT NOT NULL, 
	PRIMARY KEY ("key")
);
INSERT INTO "meta" VALUES('schema_version','1');
CREATE TABLE metric_steps (
	run_id VARCHAR(32) NOT NULL, 
	name VARCHAR(255) NOT NULL, 
	step INTEGER NOT NULL, 
	value FLOAT, 
	special VARCHAR(8), 
	ts FLOAT NOT NULL
);
CREATE TABLE metrics (
	run_id VARCHAR(32) NOT NULL, 
	name VARCHAR(255) NOT NULL, 
	value FLOAT, 
	special VARCHAR(8), 
	step INTEGER, 
	ts FLOAT NOT NULL, 
	PRIMARY KEY (run_id, name)
);
INSERT INTO "metrics" VALUES('0123456789abcdef0123456789abcdef','roc_auc',0.93,NULL,NULL,1700000050.0);
CREATE TABLE params (
	run_id VARCHAR(32) NOT NULL, 
	name VARCHAR(255) NOT NULL, 
	value TEXT NOT NULL, 
	PRIMARY KEY (run_id, name)
);
INSERT INTO "params" VALUES('0123456789abcdef0123456789abcdef','C','1.0');
CREATE TABLE runs (
	run_id VARCHAR(32) NOT NULL, 
	experiment VARCHAR(128) NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	kind VARCHAR(32) DEFAULT 'experiment' NOT NULL, 
	source VARCHAR(32) DEFAULT 'kernel' NOT NULL, 
	started FLOAT NOT NULL, 
	ended FLOAT, 
	heartbeat FLOAT, 
	host VARCHAR(255), 
	pid INTEGER, 
	proc_start VARCHAR(32), 
	notebook_path TEXT, 
	notebook_hash VARCHAR(64), 
	declaration TEXT DEFAULT '{}' NOT NULL, 
	baseline_ref TEXT, 
	baseline_run_id VARCHAR(32), 
	verdict VARCHAR(16), 
	verdict_detail TEXT, 
	lock_hash VARCHAR(64), 
	parent_id VARCHAR(32), 
	origin_run_id VARCHAR(32), 
	error TEXT, 
	extra TEXT DEFAULT '{}' NOT NULL, 
	PRIMARY KEY (run_id)
);
INSERT INTO "runs" VALUES('0123456789abcdef0123456789abcdef','legacy-exp','finished','experiment','kernel',1700000000.0,1700000060.0,1700000060.0,'old-host',1,NULL,NULL,NULL,'{"experiment": "legacy-exp", "hypothesis": "v1 runs survive upgrades", "success": ["roc_auc >= 0.9"]}',NULL,NULL,'supported','{}',NULL,NULL,NULL,NULL,'{}');
CREATE TABLE tags (
	run_id VARCHAR(32) NOT NULL, 
	"key" VARCHAR(255) NOT NULL, 
	value TEXT NOT NULL, 
	PRIMARY KEY (run_id, "key")
);
CREATE INDEX ix_runs_started ON runs (started);
CREATE INDEX ix_runs_experiment ON runs (experiment);
CREATE INDEX ix_runs_parent_id ON runs (parent_id);
CREATE INDEX ix_runs_origin_run_id ON runs (origin_run_id);
CREATE INDEX ix_runs_status ON runs (status);
CREATE INDEX ix_metric_steps_run_name_step ON metric_steps (run_id, name, step);
CREATE INDEX ix_approvals_run_id ON approvals (run_id);
CREATE INDEX ix_exports_run_id ON exports (run_id);
COMMIT;
