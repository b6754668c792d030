package dev.stockroom.peer;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.regex.Pattern;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StoreQueryParameters;
import org.apache.kafka.streams.state.KeyValueIterator;
import org.apache.kafka.streams.state.QueryableStoreTypes;
import org.apache.kafka.streams.state.ReadOnlyKeyValueStore;

/**
 * Stockroom's write routes for the benchmark's mix, on the JDK's HTTP server: each write
 * is validated, produced to `commands` (key: SKU) and answered when its outcome arrives on
 * `results` (not on produce), with Stockroom's status codes, bodies and headers (ETag,
 * Stockroom-Position, Location; problems as application/problem+json). Reads:
 * GET /products/{sku} and GET /admin/state from the state store (interactive queries),
 * GET /search from {@link Catalog}.
 */
final class HttpApi {
    private static final Pattern SKU = Pattern.compile("[A-Za-z0-9._-]{1,64}");
    private static final int MAX_BODY = 1 << 20;

    private final KafkaProducer<String, String> producer;
    private final String commandsTopic;
    private final Results results;
    private final KafkaStreams streams;
    private final Catalog catalog;
    private final long writeTimeoutMs;
    private HttpServer server;
    private ExecutorService pool;

    HttpApi(KafkaProducer<String, String> producer, String commandsTopic, Results results, KafkaStreams streams,
            Catalog catalog, long writeTimeoutMs) {
        this.producer = producer;
        this.commandsTopic = commandsTopic;
        this.results = results;
        this.streams = streams;
        this.catalog = catalog;
        this.writeTimeoutMs = writeTimeoutMs;
    }

    InetSocketAddress start(InetSocketAddress listen, int threads) throws IOException {
        server = HttpServer.create(listen, 1024);
        // A request's thread waits for its outcome: one thread per concurrent request.
        pool = Executors.newFixedThreadPool(threads);
        server.setExecutor(pool);
        server.createContext("/", this::handle);
        server.start();
        return server.getAddress();
    }

    void stop() {
        server.stop(0);
        pool.shutdownNow();
    }

    /** An answer that stops the request early (a problem). */
    private static final class Answer extends Exception {
        final int status;
        final ObjectNode body;

        Answer(int status, String kind, String detail) {
            super(detail, null, false, false);
            this.status = status;
            this.body = Decider.problem(status, kind, detail);
        }

        Answer field(String name) {
            body.put("field", name);
            return this;
        }
    }

    private void handle(HttpExchange ex) throws IOException {
        try {
            route(ex);
        } catch (Answer a) {
            send(ex, a.status, a.body, Map.of());
        } catch (RuntimeException | InterruptedException e) {
            send(ex, 500, Decider.problem(500, "internal", String.valueOf(e)), Map.of());
        } finally {
            ex.close();
        }
    }

    private void route(HttpExchange ex) throws IOException, Answer, InterruptedException {
        String method = ex.getRequestMethod();
        String[] p = ex.getRequestURI().getRawPath().substring(1).split("/");
        for (int i = 0; i < p.length; i++) {
            p[i] = URLDecoder.decode(p[i], StandardCharsets.UTF_8);
        }
        String route = method + " " + String.join("/", shape(p));
        switch (route) {
            case "GET health/livez" -> send(ex, 200, Json.object().put("status", "ok"), Map.of());
            case "GET health/readyz" -> {
                boolean up = streams.state() == KafkaStreams.State.RUNNING;
                send(ex, up ? 200 : 503, Json.object().put("status", streams.state().toString()), Map.of());
            }
            case "GET search" -> {
                Map<String, String> q = query(ex.getRequestURI().getRawQuery());
                int limit = Math.min(100, Math.max(1, Integer.parseInt(q.getOrDefault("limit", "20"))));
                send(ex, 200, catalog.search(q.get("q"), limit), Map.of());
            }
            case "GET products/*" -> readProduct(ex, p[1]);
            case "GET admin/state" -> dumpState(ex);
            case "POST products" -> {
                ObjectNode b = body(ex);
                String sku = text(b, "sku", true);
                register(b);
                write(ex, "register", sku, null, b);
            }
            case "PATCH products/*" -> write(ex, "update", sku(p[1]), null, update(body(ex)));
            case "POST products/*/stock/receipts" -> {
                ObjectNode b = body(ex);
                positive(b, "quantity", true);
                write(ex, "receive", sku(p[1]), null, b);
            }
            case "POST products/*/reservations" -> {
                ObjectNode b = body(ex);
                if (!SKU.matcher(text(b, "reservation_id", true)).matches()) {
                    throw new Answer(422, "validation", "reservation_id must be 1-64 of [A-Za-z0-9._-]")
                            .field("reservation_id");
                }
                positive(b, "quantity", true);
                write(ex, "reserve", sku(p[1]), null, b);
            }
            case "POST products/*/reservations/*/confirm" -> write(ex, "confirm", sku(p[1]), p[3], body(ex));
            case "POST products/*/reservations/*/release" -> write(ex, "release", sku(p[1]), p[3], body(ex));
            default -> throw new Answer(404, "not-found", "no route " + method + " " + ex.getRequestURI().getPath());
        }
    }

    /** The route's shape: path segments, the variable ones (SKU, reservation id) as "*". */
    private static String[] shape(String[] p) {
        String[] s = p.clone();
        if (s.length >= 2 && s[0].equals("products")) {
            s[1] = "*";
            if (s.length >= 4 && s[2].equals("reservations")) {
                s[3] = "*";
            }
        }
        return s;
    }

    /** Produces the command and waits for its outcome on `results`. */
    private void write(HttpExchange ex, String type, String sku, String reservationId, ObjectNode body)
            throws IOException, Answer, InterruptedException {
        Command c = new Command();
        c.type = type;
        c.id = "c-" + UUID.randomUUID();
        c.sku = sku;
        c.reservationId = reservationId;
        c.body = body;
        c.idempotencyKey = ex.getRequestHeaders().getFirst("Idempotency-Key");
        if (c.idempotencyKey != null) {
            c.bodyHash = hash(Json.text(body) + type + sku + reservationId);
        }
        String ifMatch = ex.getRequestHeaders().getFirst("If-Match");
        if (ifMatch != null) {
            try {
                c.ifMatch = Long.parseLong(ifMatch.replace("W/", "").replace("\"", "").trim());
            } catch (NumberFormatException e) {
                throw new Answer(400, "invalid-header", "header If-Match must be a version such as \"3\"")
                        .field("If-Match");
            }
        }
        var pending = results.expect(c.id);
        producer.send(new ProducerRecord<>(commandsTopic, sku, Json.text(c)), (md, e) -> {
            if (e != null) {
                results.fail(c.id, e);
            }
        });
        Outcome o;
        try {
            o = pending.get(writeTimeoutMs, TimeUnit.MILLISECONDS);
        } catch (TimeoutException e) {
            results.forget(c.id);
            ObjectNode b = Json.object().put("command_id", c.id).put("status", "pending");
            send(ex, 202, b, Map.of("Location", "/commands/" + c.id));
            return;
        } catch (ExecutionException e) {
            throw new Answer(503, "unavailable", "the command log refused the command: " + e.getCause());
        }
        if (!o.problem() && (type.equals("register") || (type.equals("update")))) {
            catalog.put(sku, body);
        }
        Map<String, String> headers = new HashMap<>();
        if (o.version != null) {
            headers.put("ETag", "\"" + o.version + "\"");
        }
        if (o.position != null && !o.problem()) {
            headers.put("Stockroom-Position", o.position);
        }
        if (o.location != null) {
            headers.put("Location", o.location);
        }
        send(ex, o.status, o.body, headers);
    }

    private ReadOnlyKeyValueStore<String, Product> store() throws Answer {
        try {
            return streams.store(StoreQueryParameters.fromNameAndType(
                    CommandProcessor.STORE, QueryableStoreTypes.<String, Product>keyValueStore()));
        } catch (RuntimeException e) {
            throw new Answer(503, "unavailable", "the state store is not ready: " + e.getMessage());
        }
    }

    private void readProduct(HttpExchange ex, String sku) throws IOException, Answer {
        Product p = store().get(sku);
        if (p == null) {
            throw new Answer(404, "not-found", "no product " + sku);
        }
        ObjectNode b = Json.object();
        b.put("sku", p.sku).put("name", p.name).put("description", p.description).put("brand", p.brand)
                .put("category", p.category).put("gtin", p.gtin).put("price_cents", p.priceCents)
                .put("currency", p.currency).put("status", p.status).put("version", p.version);
        b.putObject("stock").put("on_hand", p.onHand).put("reserved", p.reserved)
                .put("available", p.onHand - p.reserved);
        send(ex, 200, b, Map.of("ETag", "\"" + p.version + "\""));
    }

    /** Every SKU's version and stock, for the correctness check (`Main check`). */
    private void dumpState(HttpExchange ex) throws IOException, Answer {
        ObjectNode out = Json.object();
        ArrayNode a = out.putArray("products");
        try (KeyValueIterator<String, Product> it = store().all()) {
            while (it.hasNext()) {
                Product p = it.next().value;
                ObjectNode r = a.addObject();
                r.put("sku", p.sku).put("version", p.version).put("on_hand", p.onHand).put("reserved", p.reserved);
                r.set("reservations", Json.MAPPER.valueToTree(p.reservations));
            }
        }
        send(ex, 200, out, Map.of());
    }

    private static ObjectNode body(HttpExchange ex) throws IOException, Answer {
        byte[] data;
        try (InputStream in = ex.getRequestBody()) {
            data = in.readNBytes(MAX_BODY + 1);
        }
        if (data.length > MAX_BODY) {
            throw new Answer(413, "too-large", "the body is over 1 MiB");
        }
        if (data.length == 0) {
            return Json.object();
        }
        try {
            JsonNode n = Json.MAPPER.readTree(data);
            if (n instanceof ObjectNode o) {
                return o;
            }
        } catch (IOException e) {
            // below
        }
        throw new Answer(422, "validation", "the body is not a JSON object");
    }

    private static void register(ObjectNode b) throws Answer {
        String sku = text(b, "sku", true);
        if (!SKU.matcher(sku).matches()) {
            throw new Answer(422, "validation", "sku must be 1-64 of [A-Za-z0-9._-]").field("sku");
        }
        String name = text(b, "name", true);
        if (name.isBlank() || name.length() > 200) {
            throw new Answer(422, "validation", "name must be 1-200 characters").field("name");
        }
        if (!b.hasNonNull("price_cents") || !b.get("price_cents").canConvertToLong()
                || b.get("price_cents").asLong() < 0) {
            throw new Answer(422, "validation", "price_cents must be an integer ≥ 0").field("price_cents");
        }
        if (b.has("initial_stock") && (!b.get("initial_stock").canConvertToLong() || b.get("initial_stock").asLong() < 0)) {
            throw new Answer(422, "validation", "initial_stock must be an integer ≥ 0").field("initial_stock");
        }
        details(b);
    }

    private static ObjectNode update(ObjectNode b) throws Answer {
        if (b.has("name")) {
            String name = text(b, "name", true);
            if (name.isBlank() || name.length() > 200) {
                throw new Answer(422, "validation", "name must be 1-200 characters").field("name");
            }
        }
        if (b.has("price_cents") && (!b.get("price_cents").canConvertToLong() || b.get("price_cents").asLong() < 0)) {
            throw new Answer(422, "validation", "price_cents must be an integer ≥ 0").field("price_cents");
        }
        details(b);
        return b;
    }

    private static void details(ObjectNode b) throws Answer {
        if (b.hasNonNull("description") && b.get("description").asText().length() > 5000) {
            throw new Answer(422, "validation", "description must be at most 5000 characters").field("description");
        }
        if (b.hasNonNull("gtin") && !validGtin(b.get("gtin").asText())) {
            throw new Answer(422, "validation", "gtin must be 8, 12, 13 or 14 digits with a valid check digit")
                    .field("gtin");
        }
    }

    static boolean validGtin(String g) {
        if (!g.matches("\\d{8}|\\d{12}|\\d{13}|\\d{14}")) {
            return false;
        }
        int sum = 0;
        for (int i = 0; i < g.length() - 1; i++) {
            int d = g.charAt(g.length() - 2 - i) - '0';
            sum += i % 2 == 0 ? d * 3 : d;
        }
        return (10 - sum % 10) % 10 == g.charAt(g.length() - 1) - '0';
    }

    private static String text(ObjectNode b, String field, boolean required) throws Answer {
        JsonNode n = b.get(field);
        if (n == null || !n.isTextual()) {
            throw new Answer(422, "validation", field + " must be a string").field(field);
        }
        return n.asText();
    }

    private static void positive(ObjectNode b, String field, boolean required) throws Answer {
        JsonNode n = b.get(field);
        if (n == null || !n.canConvertToLong() || !n.isIntegralNumber() || n.asLong() <= 0) {
            throw new Answer(422, "validation", field + " must be an integer > 0").field(field);
        }
    }

    private static String sku(String sku) throws Answer {
        if (!SKU.matcher(sku).matches()) {
            throw new Answer(404, "not-found", "no product " + sku);
        }
        return sku;
    }

    private static Map<String, String> query(String raw) {
        Map<String, String> q = new HashMap<>();
        if (raw != null) {
            for (String pair : raw.split("&")) {
                int eq = pair.indexOf('=');
                String k = eq < 0 ? pair : pair.substring(0, eq);
                String v = eq < 0 ? "" : pair.substring(eq + 1);
                q.put(URLDecoder.decode(k, StandardCharsets.UTF_8), URLDecoder.decode(v, StandardCharsets.UTF_8));
            }
        }
        return q;
    }

    private static String hash(String text) {
        try {
            MessageDigest d = MessageDigest.getInstance("SHA-256");
            return HexFormat.of().formatHex(d.digest(text.getBytes(StandardCharsets.UTF_8)));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    private static void send(HttpExchange ex, int status, ObjectNode body, Map<String, String> headers)
            throws IOException {
        byte[] data = Json.bytes(body);
        var h = ex.getResponseHeaders();
        h.set("Content-Type", status >= 400 ? "application/problem+json" : "application/json");
        headers.forEach(h::set);
        ex.sendResponseHeaders(status, data.length);
        ex.getResponseBody().write(data);
    }
}
