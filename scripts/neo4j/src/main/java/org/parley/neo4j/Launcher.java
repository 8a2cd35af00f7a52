package org.parley.neo4j;

import java.nio.file.Path;
import java.time.Duration;
import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.connectors.BoltConnectorInternalSettings;
import org.neo4j.configuration.connectors.HttpConnector;
import org.neo4j.configuration.connectors.HttpsConnector;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;
import org.neo4j.io.ByteUnit;
import org.neo4j.logging.Level;
import org.neo4j.logging.log4j.Log4jLogProvider;

/**
 * Runs a throwaway Neo4j Community DBMS for Parley's tests, embedded in this
 * JVM, with Bolt on 127.0.0.1 only and authentication off.
 *
 * <p>Usage: {@code java -cp ... org.parley.neo4j.Launcher HOME PORT}. HOME is
 * the Neo4j home (data/ and logs/ are created below it); PORT is the Bolt
 * port. scripts/neo4j-start.sh picks both, sets the heap, and runs this in
 * the background; scripts/neo4j-stop.sh ends it with SIGTERM.
 *
 * <p>Why embedded rather than the Neo4j server tarball: the tarball is not
 * on Maven Central (the only source reachable from Parley's machines), while
 * the community DBMS jars, Bolt included, are.
 */
public final class Launcher {
    /** The line neo4j-start.sh waits for (besides the open port). */
    static final String READY = "parley-neo4j: ready";

    private Launcher() {}

    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            System.err.println("usage: Launcher HOME PORT");
            System.exit(2);
        }
        Path home = Path.of(args[0]).toAbsolutePath();
        int port = Integer.parseInt(args[1]);
        SocketAddress bolt = new SocketAddress("127.0.0.1", port);

        DatabaseManagementService dbms = new DatabaseManagementServiceBuilder(home)
                // Neo4j's user log (start-up, errors) to stdout = the log file.
                .setUserLogProvider(new Log4jLogProvider(System.out, Level.INFO))
                // Loopback only: every listener, not just Bolt.
                .setConfig(GraphDatabaseSettings.default_listen_address, new SocketAddress("127.0.0.1"))
                .setConfig(GraphDatabaseSettings.default_advertised_address, new SocketAddress("127.0.0.1"))
                .setConfig(BoltConnector.enabled, true)
                .setConfig(BoltConnector.listen_address, bolt)
                .setConfig(BoltConnector.advertised_address, bolt)
                // Plain bolt:// (no TLS), no users: a test fixture, never exposed.
                .setConfig(BoltConnector.encryption_level, BoltConnector.EncryptionLevel.DISABLED)
                .setConfig(GraphDatabaseSettings.auth_enabled, false)
                .setConfig(HttpConnector.enabled, false)
                .setConfig(HttpsConnector.enabled, false)
                // Sized for a 2-core, 24 GiB machine that also runs the tests;
                // the heap itself is set by the caller (-Xmx).
                .setConfig(GraphDatabaseSettings.pagecache_memory, ByteUnit.mebiBytes(256))
                // Small, fast to create, and no calls home (no network here).
                .setConfig(GraphDatabaseSettings.preallocate_logical_logs, false)
                .setConfig(GraphDatabaseSettings.udc_enabled, false)
                // Bolt shuts down after the databases have checkpointed, and
                // would then wait 5 s for each of its two thread pools; 1 s
                // keeps neo4j-stop.sh quick and loses nothing.
                .setConfig(BoltConnectorInternalSettings.connection_shutdown_wait_time, Duration.ofSeconds(1))
                .setConfig(BoltConnectorInternalSettings.thread_pool_shutdown_wait_time, Duration.ofSeconds(1))
                .build();

        // SIGTERM/SIGINT (neo4j-stop.sh) run this: a clean shutdown, so the
        // next start on the same data needs no recovery.
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            dbms.shutdown();
            System.out.println("parley-neo4j: stopped");
        }, "parley-neo4j-shutdown"));

        // build() has started Bolt; also wait for the default database, so
        // "ready" means queries work, not just that the port is open.
        String db = GraphDatabaseSettings.DEFAULT_DATABASE_NAME;
        if (!dbms.database(db).isAvailable(Duration.ofSeconds(120).toMillis())) {
            System.out.println("parley-neo4j: database " + db + " did not become available");
            System.exit(1);
        }
        System.out.println(READY + " on bolt://127.0.0.1:" + port + " (home " + home + ")");
        System.out.flush();

        // Serve until the process is signalled.
        Thread.currentThread().join();
    }
}
