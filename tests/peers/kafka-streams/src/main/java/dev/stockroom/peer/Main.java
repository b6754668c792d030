package dev.stockroom.peer;

import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.serialization.StringSerializer;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsConfig;

/**
 * The Kafka Streams peer of Stockroom's benchmark (issue 15).
 *
 * <pre>
 * peer serve   --bootstrap HOST:PORT --prefix P [--listen 127.0.0.1:0] [--addr-file F]
 *              [--guarantee exactly_once_v2|at_least_once] [--commit-interval-ms N]
 *              [--linger-ms 0] [--threads 2] [--partitions 8] [--state-dir DIR]
 *              [--break oversell]   a deliberately broken peer, to see the checks fail
 * peer race    --url URL [--rounds 20] [--racers 8]        one winner per SKU and per last unit
 * peer check   --url URL --bootstrap HOST:PORT --prefix P  no overselling; events agree with the store
 * peer cleanup --bootstrap HOST:PORT --prefix P            deletes the run's topics
 * </pre>
 *
 * One JVM is the whole node, as `stockroom serve` is: the HTTP API, the producer of
 * `commands`, the consumer of `results` and the Kafka Streams application.
 */
public final class Main {
    private Main() {}

    public static void main(String[] args) throws Exception {
        // Kafka's clients log every config at INFO: warnings and errors are enough.
        System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", System.getProperty("peer.log", "warn"));
        if (args.length == 0) {
            System.err.println("usage: peer serve|race|check|cleanup --name value ... (see Main.java)");
            System.exit(2);
        }
        Options o = new Options(args, 1);
        switch (args[0]) {
            case "serve" -> serve(o);
            case "race" -> System.exit(Checks.race(o) ? 0 : 1);
            case "check" -> System.exit(Checks.state(o) ? 0 : 1);
            case "cleanup" -> cleanup(o);
            default -> {
                System.err.println("unknown subcommand " + args[0]);
                System.exit(2);
            }
        }
    }

    static void serve(Options o) throws Exception {
        System.setProperty("sun.net.httpserver.nodelay", "true"); // no Nagle delay on answers
        String bootstrap = o.need("bootstrap");
        String prefix = o.need("prefix");
        Topics topics = Topics.of(prefix);
        int partitions = o.integer("partitions", 8);
        if (o.get("break", "").equals("oversell")) {
            Decider.oversell = true;
            System.err.println("peer: BROKEN on purpose (--break oversell): reservations skip the stock check");
        }
        createTopics(bootstrap, topics, partitions);

        Properties p = new Properties();
        // The prefix is unique per run, so is the application id (its group, its
        // changelog topic `<prefix>-products-changelog`, its transactional ids).
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, prefix);
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, o.get("guarantee", StreamsConfig.EXACTLY_ONCE_V2));
        if (o.has("commit-interval-ms")) {
            // Defaults: 100 ms under exactly_once_v2, 30 s under at_least_once.
            p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, o.integer("commit-interval-ms", 100));
        }
        // One stream thread per core (2 here): tasks (one per partition) are spread over them.
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, o.integer("threads", Runtime.getRuntime().availableProcessors()));
        p.put(StreamsConfig.STATE_DIR_CONFIG, o.get("state-dir", Files.createTempDirectory("peer-state").toString()));
        // Streams sets its producer's linger.ms to 100 unless told: an answer would wait for
        // it under at_least_once. Stockroom's producer uses 0 (ARCHITECTURE.md, "On Kafka").
        p.put(StreamsConfig.producerPrefix(ProducerConfig.LINGER_MS_CONFIG), o.integer("linger-ms", 0));
        // A poll returns as soon as a command is there.
        p.put(StreamsConfig.consumerPrefix("fetch.max.wait.ms"), 100);
        KafkaStreams streams = new KafkaStreams(CommandProcessor.topology(topics), p);
        CountDownLatch running = new CountDownLatch(1);
        streams.setStateListener((now, before) -> {
            if (now == KafkaStreams.State.RUNNING) {
                running.countDown();
            }
            if (now == KafkaStreams.State.ERROR) {
                System.err.println("peer: the streams application failed");
                System.exit(1);
            }
        });
        streams.setUncaughtExceptionHandler(e -> {
            System.err.println("peer: stream thread failed: " + e);
            e.printStackTrace();
            return org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse
                    .SHUTDOWN_CLIENT;
        });
        streams.start();
        running.await();

        KafkaProducer<String, String> producer = new KafkaProducer<>(
                Map.of(
                        ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap,
                        // The same producer settings as Stockroom's node: acks=all, idempotent, no linger.
                        ProducerConfig.ACKS_CONFIG, "all",
                        ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, true,
                        ProducerConfig.LINGER_MS_CONFIG, o.integer("linger-ms", 0)),
                new StringSerializer(),
                new StringSerializer());
        Catalog catalog = new Catalog();
        Results results = new Results(bootstrap, topics.results(), outcome -> {});
        Thread reader = new Thread(results, "results");
        reader.start();
        HttpApi api = new HttpApi(producer, topics.commands(), results, streams, catalog,
                o.integer("write-timeout-ms", 5000));
        String[] listen = o.get("listen", "127.0.0.1:0").split(":");
        InetSocketAddress addr = api.start(
                new InetSocketAddress(listen[0], Integer.parseInt(listen[1])), o.integer("http-threads", 256));
        String where = addr.getHostString() + ":" + addr.getPort();
        if (o.has("addr-file")) {
            Path tmp = Path.of(o.get("addr-file", "") + ".tmp");
            Files.writeString(tmp, where);
            Files.move(tmp, Path.of(o.get("addr-file", "")));
        }
        System.err.println("peer: listening on " + where + ", " + p.get(StreamsConfig.PROCESSING_GUARANTEE_CONFIG)
                + ", commit.interval.ms " + p.getOrDefault(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, "default"));

        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            api.stop();
            results.stop();
            producer.close(Duration.ofSeconds(5));
            streams.close(Duration.ofSeconds(20));
            stopped.countDown();
        }));
        stopped.await();
    }

    static void createTopics(String bootstrap, Topics t, int partitions) throws Exception {
        try (Admin admin = Admin.create(Map.of(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap))) {
            for (String name : List.of(t.commands(), t.events(), t.results())) {
                try {
                    // Replication: the broker's default (1 on scripts/kafka.sh's single broker).
                    admin.createTopics(List.of(new NewTopic(name, java.util.Optional.of(partitions),
                            java.util.Optional.empty()))).all().get();
                } catch (ExecutionException e) {
                    if (!(e.getCause() instanceof TopicExistsException)) {
                        throw e;
                    }
                }
            }
        }
    }

    static void cleanup(Options o) throws Exception {
        String prefix = o.need("prefix");
        try (Admin admin = Admin.create(Map.of(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, o.need("bootstrap")))) {
            List<String> mine = admin.listTopics().names().get().stream()
                    .filter(n -> n.startsWith(prefix + ".") || n.startsWith(prefix + "-"))
                    .toList();
            admin.deleteTopics(mine).all().get();
            System.err.println("peer: deleted " + mine.size() + " topics of " + prefix);
        }
    }
}
