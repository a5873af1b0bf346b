// The PostgreSQL door's differential harness, Java side: pgjdbc (DBeaver's, Metabase's and
// Tableau's driver) runs the same steps against a target and prints what it saw as JSON.
// prepareThreshold=1 makes the second execution a named statement with binary results;
// setFetchSize with autocommit off reads through a suspended portal; setQueryTimeout sends a
// CancelRequest; DatabaseMetaData is what DBeaver's navigator asks.
//
//   java -cp /usr/share/java/postgresql.jar Probe.java <jdbc url> <user> <password> <schema>
import java.sql.*;
import java.util.*;

public class Probe {
    static String quote(String s) {
        return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"") + "\"";
    }

    static String value(Object v) {
        if (v == null) return "null";
        if (v instanceof byte[]) {
            StringBuilder sb = new StringBuilder("bytes:");
            for (byte b : (byte[]) v) sb.append(String.format("%02x", b));
            return quote(sb.toString());
        }
        return quote(v.getClass().getSimpleName() + ":" + v);
    }

    static String rows(ResultSet rs) throws SQLException {
        ResultSetMetaData md = rs.getMetaData();
        StringBuilder sb = new StringBuilder("{\"columns\":[");
        for (int i = 1; i <= md.getColumnCount(); i++) {
            sb.append(i > 1 ? "," : "").append(quote(md.getColumnLabel(i) + ":" + md.getColumnTypeName(i)));
        }
        sb.append("],\"rows\":[");
        boolean first = true;
        while (rs.next()) {
            sb.append(first ? "" : ",").append("[");
            for (int i = 1; i <= md.getColumnCount(); i++) {
                sb.append(i > 1 ? "," : "").append(value(rs.getObject(i)));
            }
            sb.append("]");
            first = false;
        }
        return sb.append("]}").toString();
    }

    static String error(SQLException e) {
        return "{\"error\":" + quote(String.valueOf(e.getSQLState())) + "}";
    }

    public static void main(String[] args) throws Exception {
        Properties p = new Properties();
        p.setProperty("user", args[1]);
        p.setProperty("password", args[2]);
        p.setProperty("prepareThreshold", "1");
        p.setProperty("sslmode", "disable");
        p.setProperty("currentSchema", args[3]);
        p.setProperty("readOnly", "true");
        Map<String, String> out = new TreeMap<>();
        try (Connection c = DriverManager.getConnection(args[0], p)) {
            // Run each statement three times: the last ones are server-prepared, binary.
            try (PreparedStatement ps = c.prepareStatement(
                    "SELECT i4, i8, f8, n, t, b, d, ts, tz, by FROM items WHERE i4 < ? ORDER BY i4")) {
                for (int k = 0; k < 3; k++) {
                    ps.setInt(1, 100);
                    try (ResultSet rs = ps.executeQuery()) {
                        out.put("rows" + k, rows(rs));
                    }
                }
            }
            try (Statement s = c.createStatement()) {
                try (ResultSet rs = s.executeQuery("SELECT * FROM no_such_table")) {
                    out.put("missing_table", rows(rs));
                } catch (SQLException e) {
                    out.put("missing_table", error(e));
                }
            }
            // Portal suspension: 2 rows per round trip.
            c.setAutoCommit(false);
            try (PreparedStatement ps = c.prepareStatement("SELECT i4 FROM items ORDER BY i4")) {
                ps.setFetchSize(2);
                try (ResultSet rs = ps.executeQuery()) {
                    out.put("fetch_size", rows(rs));
                }
            }
            c.commit();
            c.setAutoCommit(true);
            // The query timeout cancels the running statement.
            try (Statement s = c.createStatement()) {
                s.setQueryTimeout(1);
                try (ResultSet rs = s.executeQuery("SELECT * FROM slow")) {
                    out.put("timeout", rows(rs));
                } catch (SQLException e) {
                    out.put("timeout", error(e));
                }
            }
            try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT count(*) AS after FROM items")) {
                out.put("after_cancel", rows(rs));
            }
            DatabaseMetaData md = c.getMetaData();
            out.put("product", "{\"rows\":[[" + quote(md.getDatabaseProductName()) + "]]}");
            try (ResultSet rs = md.getTables(null, args[4], "%", new String[] {"TABLE", "VIEW"})) {
                StringBuilder sb = new StringBuilder("{\"rows\":[");
                boolean first = true;
                while (rs.next()) {
                    sb.append(first ? "" : ",").append("[").append(quote(rs.getString("TABLE_NAME"))).append("]");
                    first = false;
                }
                out.put("tables", sb.append("]}").toString());
            }
            try (ResultSet rs = md.getColumns(null, args[4], "items", "%")) {
                StringBuilder sb = new StringBuilder("{\"rows\":[");
                boolean first = true;
                while (rs.next()) {
                    sb.append(first ? "" : ",").append("[")
                        .append(quote(rs.getString("COLUMN_NAME"))).append(",")
                        .append(quote(rs.getString("TYPE_NAME"))).append(",")
                        .append(rs.getInt("DATA_TYPE")).append("]");
                    first = false;
                }
                out.put("columns", sb.append("]}").toString());
            }
        }
        StringBuilder sb = new StringBuilder("{");
        boolean first = true;
        for (Map.Entry<String, String> e : out.entrySet()) {
            sb.append(first ? "" : ",").append(quote(e.getKey())).append(":").append(e.getValue());
            first = false;
        }
        System.out.println(sb.append("}"));
    }
}
