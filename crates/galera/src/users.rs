//! The SQL that creates (idempotently) the users and databases of the cluster description: run
//! once the bootstrapping node is Primary; it replicates to the others. Pure.

use cluster_config::{ClusterConfig, ConfigError, User};

fn account(u: &User) -> String {
    format!("'{}'@'{}'", u.name, u.host)
}

/// `CREATE USER IF NOT EXISTS` + `ALTER USER` (so a changed password file takes effect), the
/// app user's databases and grants, and the monitor user's grants (no data access).
pub fn ensure_users_sql(cfg: &ClusterConfig) -> Result<String, ConfigError> {
    let mut sql = String::new();
    let app = &cfg.users.app;
    let pw = cfg.app_password()?;
    sql += &format!(
        "CREATE USER IF NOT EXISTS {a} IDENTIFIED BY '{pw}'; ALTER USER {a} IDENTIFIED BY '{pw}';",
        a = account(app)
    );
    for db in &app.databases {
        sql += &format!(" CREATE DATABASE IF NOT EXISTS `{db}` CHARACTER SET utf8mb4; GRANT ALL PRIVILEGES ON `{db}`.* TO {};", account(app));
    }
    let mon = &cfg.users.monitor;
    let pw = cfg.monitor_password()?;
    sql += &format!(
        " CREATE USER IF NOT EXISTS {a} IDENTIFIED BY '{pw}'; ALTER USER {a} IDENTIFIED BY '{pw}'; GRANT USAGE, PROCESS, REPLICATION CLIENT ON *.* TO {a};",
        a = account(mon)
    );
    Ok(sql)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_app_databases_and_monitor() {
        let dir = std::env::temp_dir().join(format!("keel-users-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a"), "apw\n").unwrap();
        std::fs::write(dir.join("m"), "mpw").unwrap();
        let cfg = ClusterConfig::from_toml(
            "[cluster]\nname='c'\ndata_dir='d'\n[users.app]\nname='seafile'\npassword_file='a'\n\
             [users.monitor]\nname='mon'\npassword_file='m'\nhost='127.0.0.1'\n[[node]]\nname='n'\naddress='127.0.0.1'\n",
            &dir,
        )
        .unwrap();
        let sql = ensure_users_sql(&cfg).unwrap();
        assert!(
            sql.contains("CREATE USER IF NOT EXISTS 'seafile'@'%' IDENTIFIED BY 'apw'"),
            "{sql}"
        );
        for db in ["ccnet_db", "seafile_db", "seahub_db"] {
            assert!(
                sql.contains(&format!(
                    "GRANT ALL PRIVILEGES ON `{db}`.* TO 'seafile'@'%'"
                )),
                "{sql}"
            );
        }
        assert!(sql.contains("TO 'mon'@'127.0.0.1'"));
        assert!(!sql.contains("ALL PRIVILEGES ON *.*"));
    }
}
