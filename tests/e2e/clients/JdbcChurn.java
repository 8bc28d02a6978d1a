// JdbcChurn.java -- connection churn from one JVM, as an application without
// a pool: a new pgJDBC connection every 50 ms (each reads the certificate,
// key and root files again: pgJDBC builds its LibPQFactory per connection)
// until the stop file (second argument) exists or its directory is gone; then prints
// "N connections made, M failed", the distinct failure messages and the
// distinct issuers of the client certificates the server saw (pg_stat_ssl:
// a run that crossed a client-leaf switch names both client CAs), and
// exits 0.  Used by tests/e2e/clients.sh.
import java.io.File;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.util.LinkedHashSet;
import java.util.Set;

public class JdbcChurn {
	public static void main(String[] args) throws Exception {
		File stop = new File(args[1]);
		long made = 0, failed = 0;
		Set<String> why = new LinkedHashSet<>(), issuers = new LinkedHashSet<>();

		/* Its directory gone (the test was torn down): stop too. */
		while (!stop.exists() && stop.getAbsoluteFile().getParentFile().exists()) {
			try (Connection c = DriverManager.getConnection(args[0]);
			     ResultSet r = c.createStatement().executeQuery(
				     "select issuer_dn from pg_stat_ssl where pid = pg_backend_pid()")) {
				r.next();
				made++;
				issuers.add(String.valueOf(r.getString(1)));
			} catch (Exception e) {
				failed++;
				if (why.size() < 10)
					why.add(String.valueOf(e));
			}
			Thread.sleep(50);
		}
		System.out.println(made + " connections made, " + failed + " failed");
		for (String w : why)
			System.out.println("failure: " + w);
		for (String i : issuers)
			System.out.println("issuer: " + i);
	}
}
