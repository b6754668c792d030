package dev.stockroom.peer;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;

/**
 * The peer's correctness checks, so that the benchmark never compares against a broken
 * peer. Each prints one JSON line and fails (exit 1) on any violation.
 *
 * `race`: R rounds; in each, N clients register the same new SKU at the same instant
 * (exactly one 201, the others 409 sku-taken), then N clients each reserve the only
 * unit (exactly one 201, the others 409 insufficient-stock), and the product then
 * reads on hand 1, reserved 1.
 *
 * `check` (after a load run): reads every SKU's state from the store and every
 * committed event of `events` from the beginning, folds the events per SKU and asserts
 * versions 1, 2, 3 … with no gap and no repeat, one registration per SKU, no
 * reservation beyond available (no overselling: 0 ≤ reserved ≤ on hand after every
 * event), confirm/release only of open reservations, and that the fold equals the
 * store (version, on hand, reserved, the sum of open reservations).
 */
final class Checks {
    private Checks() {}

    private static final HttpClient HTTP = HttpClient.newBuilder()
            .version(HttpClient.Version.HTTP_1_1)
            .connectTimeout(Duration.ofSeconds(5))
            .build();

    private static HttpResponse<String> post(String url, ObjectNode body) throws Exception {
        return HTTP.send(HttpRequest.newBuilder(URI.create(url))
                        .header("Content-Type", "application/json")
                        .timeout(Duration.ofSeconds(30))
                        .POST(HttpRequest.BodyPublishers.ofString(Json.text(body)))
                        .build(),
                HttpResponse.BodyHandlers.ofString());
    }

    private static JsonNode get(String url) throws Exception {
        HttpResponse<String> r = HTTP.send(HttpRequest.newBuilder(URI.create(url)).timeout(Duration.ofSeconds(60)).build(),
                HttpResponse.BodyHandlers.ofString());
        if (r.statusCode() != 200) {
            throw new IllegalStateException("GET " + url + ": " + r.statusCode() + " " + r.body());
        }
        return Json.MAPPER.readTree(r.body());
    }

    /** Every racer's status, sent together. */
    private static List<Integer> together(ExecutorService pool, int racers, Racer racer) throws Exception {
        CyclicBarrier start = new CyclicBarrier(racers);
        List<Future<Integer>> answers = new ArrayList<>();
        for (int k = 0; k < racers; k++) {
            int who = k;
            answers.add(pool.submit(() -> {
                start.await();
                return racer.send(who).statusCode();
            }));
        }
        List<Integer> statuses = new ArrayList<>();
        for (Future<Integer> f : answers) {
            statuses.add(f.get());
        }
        return statuses;
    }

    private interface Racer {
        HttpResponse<String> send(int who) throws Exception;
    }

    static boolean race(Options o) throws Exception {
        String url = o.need("url");
        int rounds = o.integer("rounds", 20);
        int racers = o.integer("racers", 8);
        String run = Long.toString(System.nanoTime(), 36);
        List<String> violations = new ArrayList<>();
        ExecutorService pool = Executors.newFixedThreadPool(racers);
        try {
            for (int i = 0; i < rounds; i++) {
                String sku = "RACE-" + run + "-" + i;
                ObjectNode product = Json.object().put("sku", sku).put("name", "Race " + i).put("price_cents", 1)
                        .put("initial_stock", 1);
                List<Integer> registered = together(pool, racers, who -> post(url + "/products", product));
                if (count(registered, 201) != 1 || count(registered, 409) != racers - 1) {
                    violations.add(sku + ": register answers " + registered);
                }
                List<Integer> reserved = together(pool, racers, who -> post(url + "/products/" + sku + "/reservations",
                        Json.object().put("reservation_id", "r" + who).put("quantity", 1)));
                if (count(reserved, 201) != 1 || count(reserved, 409) != racers - 1) {
                    violations.add(sku + ": the last unit reserved by " + count(reserved, 201) + ": " + reserved);
                }
                JsonNode stock = get(url + "/products/" + sku).path("stock");
                if (stock.path("on_hand").asLong() != 1 || stock.path("reserved").asLong() != 1) {
                    violations.add(sku + ": stock after the race " + stock);
                }
            }
        } finally {
            pool.shutdownNow();
        }
        report("race", Map.of("rounds", rounds, "racers", racers), violations);
        return violations.isEmpty();
    }

    private static long count(List<Integer> statuses, int status) {
        return statuses.stream().filter(s -> s == status).count();
    }

    /** A SKU as its events say it is. */
    private static final class Folded {
        long version;
        long onHand;
        long reserved;
        final Map<String, Long> reservations = new HashMap<>();
    }

    static boolean state(Options o) throws Exception {
        String url = o.need("url");
        Topics topics = Topics.of(o.need("prefix"));
        JsonNode state = get(url + "/admin/state").path("products");
        List<String> violations = new ArrayList<>();
        Map<String, Folded> folds = new HashMap<>();
        long events = 0;
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(
                Map.of(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, o.need("bootstrap"),
                        ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed",
                        ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false,
                        ConsumerConfig.MAX_POLL_RECORDS_CONFIG, 5000),
                new StringDeserializer(), new StringDeserializer())) {
            List<TopicPartition> parts = c.partitionsFor(topics.events()).stream()
                    .map(p -> new TopicPartition(topics.events(), p.partition()))
                    .toList();
            c.assign(parts);
            c.seekToBeginning(parts);
            Map<TopicPartition, Long> end = c.endOffsets(parts);
            while (parts.stream().anyMatch(p -> c.position(p) < end.get(p))) {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(500))) {
                    events++;
                    fold(folds, Json.MAPPER.readTree(r.value()), violations);
                }
            }
        }
        for (JsonNode p : state) {
            String sku = p.path("sku").asText();
            Folded f = folds.remove(sku);
            long onHand = p.path("on_hand").asLong(), reserved = p.path("reserved").asLong();
            long open = 0;
            for (JsonNode q : p.path("reservations")) {
                open += q.asLong();
            }
            if (reserved < 0 || reserved > onHand || reserved != open) {
                violations.add(sku + ": store on hand " + onHand + ", reserved " + reserved + ", open " + open);
            }
            if (f == null) {
                violations.add(sku + ": in the store, no events");
            } else if (f.version != p.path("version").asLong() || f.onHand != onHand || f.reserved != reserved) {
                violations.add(sku + ": store v" + p.path("version") + " " + onHand + "/" + reserved
                        + ", events v" + f.version + " " + f.onHand + "/" + f.reserved);
            }
        }
        folds.keySet().forEach(sku -> violations.add(sku + ": events but not in the store"));
        report("check", Map.of("products", state.size(), "events", events), violations);
        if (state.size() == 0) {
            System.err.println("check: no products: nothing was checked");
            return false;
        }
        return violations.isEmpty();
    }

    private static void fold(Map<String, Folded> folds, JsonNode e, List<String> violations) {
        String sku = e.path("sku").asText(), type = e.path("type").asText();
        long version = e.path("version").asLong(), q = e.path("quantity").asLong();
        String id = e.path("reservation_id").asText(null);
        Folded f = folds.get(sku);
        if (type.equals("product.registered")) {
            if (f != null) {
                violations.add(sku + ": registered twice");
                return;
            }
            f = new Folded();
            f.onHand = e.path("product").path("initial_stock").asLong(0);
            folds.put(sku, f);
        } else if (f == null) {
            violations.add(sku + ": " + type + " before its registration");
            return;
        }
        if (version != f.version + 1) {
            violations.add(sku + ": " + type + " at version " + version + " after " + f.version);
        }
        f.version = version;
        switch (type) {
            case "stock.received" -> f.onHand += q;
            case "stock.reserved" -> {
                if (f.onHand - f.reserved < q) {
                    violations.add(sku + ": oversold: reserved " + q + " of " + (f.onHand - f.reserved) + " available");
                }
                if (f.reservations.put(id, q) != null) {
                    violations.add(sku + ": reservation " + id + " made twice");
                }
                f.reserved += q;
            }
            case "reservation.confirmed", "reservation.released" -> {
                Long had = f.reservations.remove(id);
                if (had == null || had != q) {
                    violations.add(sku + ": " + type + " of reservation " + id + " that is not open");
                }
                f.reserved -= q;
                if (type.equals("reservation.confirmed")) {
                    f.onHand -= q;
                }
            }
            default -> {}
        }
        if (f.reserved < 0 || f.reserved > f.onHand) {
            violations.add(sku + ": after " + type + " v" + version + ": on hand " + f.onHand + ", reserved " + f.reserved);
        }
    }

    private static void report(String what, Map<String, Object> counts, List<String> violations) {
        ObjectNode out = Json.object().put("check", what).put("ok", violations.isEmpty());
        counts.forEach((k, v) -> out.set(k, Json.MAPPER.valueToTree(v)));
        out.put("violations", violations.size());
        out.set("first_violations", Json.MAPPER.valueToTree(violations.subList(0, Math.min(10, violations.size()))));
        System.out.println(Json.text(out));
        violations.stream().limit(20).forEach(v -> System.err.println(what + ": " + v));
    }
}
