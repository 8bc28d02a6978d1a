// JdbcCheck.java -- one pgJDBC connection: the URL is the only argument;
// prints the server's answer to "select current_user" and exits 0, or
// prints the error and exits 1.  Used by tests/e2e/handoff.sh.
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;

public class JdbcCheck {
	public static void main(String[] args) {
		try (Connection c = DriverManager.getConnection(args[0]);
		     ResultSet r = c.createStatement().executeQuery("select current_user")) {
			r.next();
			System.out.println("connected as " + r.getString(1));
		} catch (Exception e) {
			System.out.println("failed: " + e);
			System.exit(1);
		}
	}
}
