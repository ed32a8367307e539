BEGIN TRANSACTION;
CREATE TABLE alembic_version (
	version_num VARCHAR(32) NOT NULL, 
	CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);
INSERT INTO "alembic_version" VALUES('v3.2.0.a');
CREATE TABLE studies (
	study_id INTEGER NOT NULL, 
	study_name VARCHAR(512) NOT NULL, 
	PRIMARY KEY (study_id)
);
INSERT INTO "studies" VALUES(1,'keras');
INSERT INTO "studies" VALUES(2,'sklearn');
CREATE TABLE study_directions (
	study_direction_id INTEGER NOT NULL, 
	direction VARCHAR(8) NOT NULL, 
	study_id INTEGER NOT NULL, 
	objective INTEGER NOT NULL, 
	PRIMARY KEY (study_direction_id), 
	UNIQUE (study_id, objective), 
	FOREIGN KEY(study_id) REFERENCES studies (study_id)
);
INSERT INTO "study_directions" VALUES(1,'MAXIMIZE',1,0);
INSERT INTO "study_directions" VALUES(2,'MAXIMIZE',2,0);
CREATE TABLE study_system_attributes (
	study_system_attribute_id INTEGER NOT NULL, 
	study_id INTEGER, 
	"key" VARCHAR(512), 
	value_json TEXT, 
	PRIMARY KEY (study_system_attribute_id), 
	UNIQUE (study_id, "key"), 
	FOREIGN KEY(study_id) REFERENCES studies (study_id)
);
CREATE TABLE study_user_attributes (
	study_user_attribute_id INTEGER NOT NULL, 
	study_id INTEGER, 
	"key" VARCHAR(512), 
	value_json TEXT, 
	PRIMARY KEY (study_user_attribute_id), 
	UNIQUE (study_id, "key"), 
	FOREIGN KEY(study_id) REFERENCES studies (study_id)
);
INSERT INTO "study_user_attributes" VALUES(1,1,'tunekit_space','"{\"optimizer__learning_rate\": \"{\\\"name\\\": \\\"FloatDistribution\\\", \\\"attributes\\\": {\\\"step\\\": null, \\\"low\\\": 0.0001, \\\"high\\\": 0.3, \\\"log\\\": true}}\"}"');
INSERT INTO "study_user_attributes" VALUES(2,1,'scoring','"accuracy"');
INSERT INTO "study_user_attributes" VALUES(3,1,'n_splits','2');
INSERT INTO "study_user_attributes" VALUES(4,1,'test_train_ratio','1.0');
INSERT INTO "study_user_attributes" VALUES(5,1,'tunekit_baselines','{"baseline": ["dummy", "logistic"], "params": [{}, {}], "split0_test_score": [0.5333333333333333, 0.9], "split1_test_score": [0.5333333333333333, 1.0], "mean_test_score": [0.5333333333333333, 0.95], "std_test_score": [0.0, 0.04999999999999999], "split0_train_score": [0.5333333333333333, 1.0], "split1_train_score": [0.5333333333333333, 0.9666666666666667], "mean_train_score": [0.5333333333333333, 0.9833333333333334], "std_train_score": [0.0, 0.016666666666666663], "mean_fit_time": [0.0002894439999181486, 0.011586444000045049], "mean_score_time": [0.0009058705001052658, 0.003389676999972835], "heldout_test_score": [null, null], "seconds": 0.04972638599997481}');
INSERT INTO "study_user_attributes" VALUES(6,2,'tunekit_space','"{\"C\": \"{\\\"name\\\": \\\"CategoricalDistribution\\\", \\\"attributes\\\": {\\\"choices\\\": [0.5, -1.0, 2.0]}}\"}"');
INSERT INTO "study_user_attributes" VALUES(7,2,'scoring','"accuracy"');
INSERT INTO "study_user_attributes" VALUES(8,2,'n_splits','2');
INSERT INTO "study_user_attributes" VALUES(9,2,'test_train_ratio','1.0');
CREATE TABLE trial_heartbeats (
	trial_heartbeat_id INTEGER NOT NULL, 
	trial_id INTEGER NOT NULL, 
	heartbeat DATETIME NOT NULL, 
	PRIMARY KEY (trial_heartbeat_id), 
	UNIQUE (trial_id), 
	FOREIGN KEY(trial_id) REFERENCES trials (trial_id)
);
INSERT INTO "trial_heartbeats" VALUES(1,5,'2026-12-02 00:47:46');
INSERT INTO "trial_heartbeats" VALUES(2,6,'2026-12-02 00:47:46');
CREATE TABLE trial_intermediate_values (
	trial_intermediate_value_id INTEGER NOT NULL, 
	trial_id INTEGER NOT NULL, 
	step INTEGER NOT NULL, 
	intermediate_value FLOAT, 
	intermediate_value_type VARCHAR(7) NOT NULL, 
	PRIMARY KEY (trial_intermediate_value_id), 
	UNIQUE (trial_id, step), 
	FOREIGN KEY(trial_id) REFERENCES trials (trial_id)
);
INSERT INTO "trial_intermediate_values" VALUES(1,1,1,6.16666666666666696272e-01,'FINITE');
INSERT INTO "trial_intermediate_values" VALUES(2,2,1,7.66666666666666607454e-01,'FINITE');
INSERT INTO "trial_intermediate_values" VALUES(3,3,1,6.16666666666666696272e-01,'FINITE');
INSERT INTO "trial_intermediate_values" VALUES(4,4,1,6.16666666666666696272e-01,'FINITE');
INSERT INTO "trial_intermediate_values" VALUES(5,2,2,8.33333333333333259318e-01,'FINITE');
INSERT INTO "trial_intermediate_values" VALUES(6,2,3,8.66666666666666696272e-01,'FINITE');
INSERT INTO "trial_intermediate_values" VALUES(7,2,4,9.16666666666666740681e-01,'FINITE');
INSERT INTO "trial_intermediate_values" VALUES(8,6,0,0.9,'FINITE');
INSERT INTO "trial_intermediate_values" VALUES(9,6,1,9.33333333333333348136e-01,'FINITE');
CREATE TABLE trial_params (
	param_id INTEGER NOT NULL, 
	trial_id INTEGER, 
	param_name VARCHAR(512), 
	param_value FLOAT, 
	distribution_json TEXT, 
	PRIMARY KEY (param_id), 
	UNIQUE (trial_id, param_name), 
	FOREIGN KEY(trial_id) REFERENCES trials (trial_id)
);
INSERT INTO "trial_params" VALUES(1,1,'optimizer__learning_rate',8.09638402661958488104e-03,'{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.0001, "high": 0.3, "log": true}}');
INSERT INTO "trial_params" VALUES(2,2,'optimizer__learning_rate',3.0676100149812757234e-02,'{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.0001, "high": 0.3, "log": true}}');
INSERT INTO "trial_params" VALUES(3,3,'optimizer__learning_rate',1.24704276343257803444e-02,'{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.0001, "high": 0.3, "log": true}}');
INSERT INTO "trial_params" VALUES(4,4,'optimizer__learning_rate',7.84557714120588667316e-03,'{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.0001, "high": 0.3, "log": true}}');
INSERT INTO "trial_params" VALUES(5,5,'C',1.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [0.5, -1.0, 2.0]}}');
INSERT INTO "trial_params" VALUES(6,6,'C',2.0,'{"name": "CategoricalDistribution", "attributes": {"choices": [0.5, -1.0, 2.0]}}');
CREATE TABLE trial_system_attributes (
	trial_system_attribute_id INTEGER NOT NULL, 
	trial_id INTEGER, 
	"key" VARCHAR(512), 
	value_json TEXT, 
	PRIMARY KEY (trial_system_attribute_id), 
	UNIQUE (trial_id, "key"), 
	FOREIGN KEY(trial_id) REFERENCES trials (trial_id)
);
CREATE TABLE trial_user_attributes (
	trial_user_attribute_id INTEGER NOT NULL, 
	trial_id INTEGER, 
	"key" VARCHAR(512), 
	value_json TEXT, 
	PRIMARY KEY (trial_user_attribute_id), 
	UNIQUE (trial_id, "key"), 
	FOREIGN KEY(trial_id) REFERENCES trials (trial_id)
);
INSERT INTO "trial_user_attributes" VALUES(1,1,'cv_test_scores','[0.6666666666666666, 0.5666666666666667]');
INSERT INTO "trial_user_attributes" VALUES(2,1,'cv_train_scores','[0.5666666666666667, 0.6666666666666666]');
INSERT INTO "trial_user_attributes" VALUES(3,1,'fit_times','[0.24040543712501972, 0.24040543712501972]');
INSERT INTO "trial_user_attributes" VALUES(4,1,'score_times','[0.001369797000052131, 0.0009128950000558689]');
INSERT INTO "trial_user_attributes" VALUES(5,1,'best_epochs','[1.0, 1.0]');
INSERT INTO "trial_user_attributes" VALUES(6,1,'n_epochs','[1.0, 1.0]');
INSERT INTO "trial_user_attributes" VALUES(7,1,'epochs_spent','2');
INSERT INTO "trial_user_attributes" VALUES(8,1,'params','{"optimizer__learning_rate": 0.008096384026619585}');
INSERT INTO "trial_user_attributes" VALUES(9,1,'engine','"stacked"');
INSERT INTO "trial_user_attributes" VALUES(10,2,'cv_test_scores','[1.0, 0.8333333333333334]');
INSERT INTO "trial_user_attributes" VALUES(11,2,'cv_train_scores','[0.9666666666666667, 0.9]');
INSERT INTO "trial_user_attributes" VALUES(12,2,'fit_times','[0.24040543712501972, 0.24040543712501972]');
INSERT INTO "trial_user_attributes" VALUES(13,2,'score_times','[0.0006992539999828296, 0.0006683900001007714]');
INSERT INTO "trial_user_attributes" VALUES(14,2,'best_epochs','[4.0, 4.0]');
INSERT INTO "trial_user_attributes" VALUES(15,2,'n_epochs','[4.0, 4.0]');
INSERT INTO "trial_user_attributes" VALUES(16,2,'epochs_spent','8');
INSERT INTO "trial_user_attributes" VALUES(17,2,'params','{"optimizer__learning_rate": 0.030676100149812757}');
INSERT INTO "trial_user_attributes" VALUES(18,2,'engine','"stacked"');
INSERT INTO "trial_user_attributes" VALUES(19,3,'cv_test_scores','[0.6666666666666666, 0.5666666666666667]');
INSERT INTO "trial_user_attributes" VALUES(20,3,'cv_train_scores','[0.6333333333333333, 0.7]');
INSERT INTO "trial_user_attributes" VALUES(21,3,'fit_times','[0.24040543712501972, 0.24040543712501972]');
INSERT INTO "trial_user_attributes" VALUES(22,3,'score_times','[0.005179106000014144, 0.0007599220000429341]');
INSERT INTO "trial_user_attributes" VALUES(23,3,'best_epochs','[1.0, 1.0]');
INSERT INTO "trial_user_attributes" VALUES(24,3,'n_epochs','[1.0, 1.0]');
INSERT INTO "trial_user_attributes" VALUES(25,3,'epochs_spent','2');
INSERT INTO "trial_user_attributes" VALUES(26,3,'params','{"optimizer__learning_rate": 0.01247042763432578}');
INSERT INTO "trial_user_attributes" VALUES(27,3,'engine','"stacked"');
INSERT INTO "trial_user_attributes" VALUES(28,4,'cv_test_scores','[0.6666666666666666, 0.5666666666666667]');
INSERT INTO "trial_user_attributes" VALUES(29,4,'cv_train_scores','[0.5666666666666667, 0.6666666666666666]');
INSERT INTO "trial_user_attributes" VALUES(30,4,'fit_times','[0.24040543712501972, 0.24040543712501972]');
INSERT INTO "trial_user_attributes" VALUES(31,4,'score_times','[0.0008233609999024338, 0.0006846599999335012]');
INSERT INTO "trial_user_attributes" VALUES(32,4,'best_epochs','[1.0, 1.0]');
INSERT INTO "trial_user_attributes" VALUES(33,4,'n_epochs','[1.0, 1.0]');
INSERT INTO "trial_user_attributes" VALUES(34,4,'epochs_spent','2');
INSERT INTO "trial_user_attributes" VALUES(35,4,'params','{"optimizer__learning_rate": 0.007845577141205887}');
INSERT INTO "trial_user_attributes" VALUES(36,4,'engine','"stacked"');
INSERT INTO "trial_user_attributes" VALUES(37,5,'tunekit_worker','"vm:6225"');
INSERT INTO "trial_user_attributes" VALUES(38,5,'params','{"C": -1.0}');
INSERT INTO "trial_user_attributes" VALUES(39,5,'cv_test_scores','[]');
INSERT INTO "trial_user_attributes" VALUES(40,5,'cv_train_scores','[]');
INSERT INTO "trial_user_attributes" VALUES(41,5,'fit_times','[]');
INSERT INTO "trial_user_attributes" VALUES(42,5,'score_times','[]');
INSERT INTO "trial_user_attributes" VALUES(43,5,'best_epochs','[]');
INSERT INTO "trial_user_attributes" VALUES(44,5,'n_epochs','[]');
INSERT INTO "trial_user_attributes" VALUES(45,5,'epochs_spent','0');
INSERT INTO "trial_user_attributes" VALUES(46,5,'failure_reason','"sklearn.utils._param_validation.InvalidParameterError: The ''C'' parameter of LogisticRegression must be a float in the range (0.0, inf]. Got -1.0 instead."');
INSERT INTO "trial_user_attributes" VALUES(47,5,'failure_traceback','"Traceback (most recent call last):\n  File \"/tmp/e47/tunekit/strategies/optuna_search.py\", line 250, in __call__\n    estimator.fit(X_train, y_train, **fit_kwargs)\n  File \"/work/main/.venv/lib/python3.11/site-packages/sklearn/base.py\", line 1393, in wrapper\n    estimator._validate_params()\n  File \"/work/main/.venv/lib/python3.11/site-packages/sklearn/base.py\", line 554, in _validate_params\n    validate_parameter_constraints(\n  File \"/work/main/.venv/lib/python3.11/site-packages/sklearn/utils/_param_validation.py\", line 98, in validate_parameter_constraints\n    raise InvalidParameterError(\nsklearn.utils._param_validation.InvalidParameterError: The ''C'' parameter of LogisticRegression must be a float in the range (0.0, inf]. Got -1.0 instead.\n"');
INSERT INTO "trial_user_attributes" VALUES(48,6,'tunekit_worker','"vm:6225"');
INSERT INTO "trial_user_attributes" VALUES(49,6,'params','{"C": 2.0}');
INSERT INTO "trial_user_attributes" VALUES(50,6,'cv_test_scores','[0.9, 0.9666666666666667]');
INSERT INTO "trial_user_attributes" VALUES(51,6,'cv_train_scores','[1.0, 0.9333333333333333]');
INSERT INTO "trial_user_attributes" VALUES(52,6,'fit_times','[0.06345110500001283, 0.06549308400008158]');
INSERT INTO "trial_user_attributes" VALUES(53,6,'score_times','[0.0012257539999609435, 0.0016583740000442049]');
INSERT INTO "trial_user_attributes" VALUES(54,6,'best_epochs','[null, null]');
INSERT INTO "trial_user_attributes" VALUES(55,6,'n_epochs','[null, null]');
INSERT INTO "trial_user_attributes" VALUES(56,6,'epochs_spent','0');
CREATE TABLE trial_values (
	trial_value_id INTEGER NOT NULL, 
	trial_id INTEGER NOT NULL, 
	objective INTEGER NOT NULL, 
	value FLOAT, 
	value_type VARCHAR(7) NOT NULL, 
	PRIMARY KEY (trial_value_id), 
	UNIQUE (trial_id, objective), 
	FOREIGN KEY(trial_id) REFERENCES trials (trial_id)
);
INSERT INTO "trial_values" VALUES(1,1,0,6.16666666666666696272e-01,'FINITE');
INSERT INTO "trial_values" VALUES(2,2,0,9.16666666666666740681e-01,'FINITE');
INSERT INTO "trial_values" VALUES(3,3,0,6.16666666666666696272e-01,'FINITE');
INSERT INTO "trial_values" VALUES(4,4,0,6.16666666666666696272e-01,'FINITE');
INSERT INTO "trial_values" VALUES(5,6,0,9.33333333333333348136e-01,'FINITE');
CREATE TABLE trials (
	trial_id INTEGER NOT NULL, 
	number INTEGER, 
	study_id INTEGER, 
	state VARCHAR(8) NOT NULL, 
	datetime_start DATETIME, 
	datetime_complete DATETIME, 
	PRIMARY KEY (trial_id), 
	FOREIGN KEY(study_id) REFERENCES studies (study_id)
);
INSERT INTO "trials" VALUES(1,0,1,'PRUNED','2026-12-02 00:47:42.033789','2026-12-02 00:47:44.427019');
INSERT INTO "trials" VALUES(2,1,1,'COMPLETE','2026-12-02 00:47:42.079366','2026-12-02 00:47:44.473894');
INSERT INTO "trials" VALUES(3,2,1,'PRUNED','2026-12-02 00:47:42.106797','2026-12-02 00:47:44.507883');
INSERT INTO "trials" VALUES(4,3,1,'PRUNED','2026-12-02 00:47:42.139908','2026-12-02 00:47:44.600697');
INSERT INTO "trials" VALUES(5,0,2,'FAIL','2026-12-02 00:47:46.631602','2026-12-02 00:47:46.809867');
INSERT INTO "trials" VALUES(6,1,2,'COMPLETE','2026-12-02 00:47:46.844461','2026-12-02 00:47:47.184372');
CREATE TABLE version_info (
	version_info_id INTEGER NOT NULL, 
	schema_version INTEGER, 
	library_version VARCHAR(256), 
	PRIMARY KEY (version_info_id), 
	CHECK (version_info_id=1)
);
INSERT INTO "version_info" VALUES(1,12,'5.0.0');
CREATE UNIQUE INDEX ix_studies_study_name ON studies (study_name);
CREATE INDEX ix_trials_study_id ON trials (study_id);
COMMIT;
