package dev.stockroom.peer;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.ArrayList;
import java.util.List;

/**
 * The business rules, pure: given a SKU's state (null: never registered) and a command,
 * the events to append, the state after them and the answer. The same rules as
 * Stockroom's domain crate for the commands of the benchmark's mix: a SKU is registered
 * once; stock received adds to on hand; a reservation needs available (on hand −
 * reserved) ≥ its quantity and a new id; confirm ships (on hand and reserved both drop),
 * release gives back; If-Match must equal the current version; a command seen before
 * (same command id, or same Idempotency-Key and body) is answered as the first time.
 */
final class Decider {
    private Decider() {}

    /** `serve --break oversell`: skip the stock check, so that the checks can be seen to fail. */
    static volatile boolean oversell = false;

    /** What a command came to. `next` is null when the state does not change. */
    record Decision(Product next, List<ObjectNode> events, Outcome outcome) {
        /** An extension member of a rejection's problem (`sku`, `available`, ...). */
        Decision with(String field, String value) {
            outcome.body.put(field, value);
            return this;
        }

        Decision with(String field, long value) {
            outcome.body.put(field, value);
            return this;
        }
    }

    static Decision decide(Product state, Command c, String position) {
        if (state != null) {
            Outcome seen = state.seen.get(c.id);
            if (seen != null) {
                return new Decision(null, List.of(), seen.withBody(c.sku)); // delivered again: answered, not applied
            }
            if (c.idempotencyKey != null) {
                Outcome first = state.keys.get(c.idempotencyKey);
                if (first != null) {
                    if (first.bodyHash != null && !first.bodyHash.equals(c.bodyHash)) {
                        return reject(c, 422, "validation",
                                "Idempotency-Key " + c.idempotencyKey + " was used with another body");
                    }
                    return new Decision(null, List.of(), first);
                }
            }
        }
        Decision d = apply(state, c, position);
        if (d.next != null) {
            Product.remember(d.next.seen, c.id, d.outcome.withoutBody());
            if (c.idempotencyKey != null) {
                d.outcome.bodyHash = c.bodyHash;
                Product.remember(d.next.keys, c.idempotencyKey, d.outcome);
            }
        }
        return d;
    }

    private static Decision apply(Product p, Command c, String position) {
        if (c.type.equals("register")) {
            if (p != null) {
                return reject(c, 409, "sku-taken", "SKU " + c.sku + " is taken").with("sku", c.sku);
            }
            Product n = new Product();
            n.sku = c.sku;
            n.currency = "EUR";
            details(n, c.body);
            n.onHand = c.body.path("initial_stock").asLong(0);
            n.version = 1;
            ObjectNode e = event("product.registered", n, c);
            e.set("product", c.body);
            Outcome o = success(c, 201, n, position);
            o.location = "/products/" + c.sku;
            return new Decision(n, List.of(e), o);
        }
        if (p == null) {
            return reject(c, 404, "not-found", "no product " + c.sku);
        }
        if (c.ifMatch != null && c.ifMatch != p.version) {
            return reject(c, 412, "version-mismatch", "the product is at version " + p.version)
                    .with("version", p.version);
        }
        List<ObjectNode> events = new ArrayList<>(1);
        Outcome o;
        switch (c.type) {
            case "update" -> {
                details(p, c.body);
                p.version++;
                ObjectNode e = event("product.updated", p, c);
                e.set("fields", c.body);
                events.add(e);
                o = success(c, 200, p, position);
            }
            case "receive" -> {
                long q = c.body.path("quantity").asLong();
                p.onHand += q;
                p.version++;
                events.add(event("stock.received", p, c).put("quantity", q));
                o = success(c, 200, p, position);
            }
            case "reserve" -> {
                String id = c.body.path("reservation_id").asText();
                long q = c.body.path("quantity").asLong();
                if (p.reservations.containsKey(id)) {
                    return reject(c, 409, "reservation-exists", "reservation " + id + " exists")
                            .with("reservation_id", id);
                }
                long available = p.onHand - p.reserved;
                if (available < q && !oversell) {
                    return reject(c, 409, "insufficient-stock", "only " + available + " available")
                            .with("available", available);
                }
                p.reserved += q;
                p.reservations.put(id, q);
                p.version++;
                events.add(event("stock.reserved", p, c).put("reservation_id", id).put("quantity", q));
                o = success(c, 201, p, position);
                o.reservationId = id;
                o.body.put("reservation_id", id);
                o.location = "/products/" + c.sku + "/reservations/" + id;
            }
            case "confirm", "release" -> {
                Long q = p.reservations.remove(c.reservationId);
                if (q == null) {
                    return reject(c, 404, "not-found", "no reservation " + c.reservationId);
                }
                boolean ship = c.type.equals("confirm");
                p.reserved -= q;
                if (ship) {
                    p.onHand -= q;
                }
                p.version++;
                events.add(event(ship ? "reservation.confirmed" : "reservation.released", p, c)
                        .put("reservation_id", c.reservationId)
                        .put("quantity", q));
                o = success(c, 200, p, position);
            }
            default -> {
                return reject(c, 422, "validation", "unknown command " + c.type);
            }
        }
        return new Decision(p, events, o);
    }

    /** The detail fields of a register or PATCH body. */
    private static void details(Product p, JsonNode b) {
        if (b.hasNonNull("name")) p.name = b.get("name").asText();
        if (b.hasNonNull("description")) p.description = b.get("description").asText();
        if (b.hasNonNull("brand")) p.brand = b.get("brand").asText();
        if (b.hasNonNull("category")) p.category = b.get("category").asText();
        if (b.hasNonNull("gtin")) p.gtin = b.get("gtin").asText();
        if (b.hasNonNull("currency")) p.currency = b.get("currency").asText();
        if (b.hasNonNull("price_cents")) p.priceCents = b.get("price_cents").asLong();
    }

    private static ObjectNode event(String type, Product p, Command c) {
        ObjectNode e = Json.object();
        e.put("type", type).put("sku", p.sku).put("version", p.version).put("command_id", c.id);
        return e;
    }

    private static Outcome success(Command c, int status, Product p, String position) {
        Outcome o = new Outcome();
        o.commandId = c.id;
        o.status = status;
        o.version = p.version;
        o.position = position;
        o.body = Json.object();
        o.body.put("command_id", c.id).put("version", p.version).put("position", position).put("sku", p.sku);
        return o;
    }

    /** A rejection: an RFC 9457 problem, no event, the state unchanged. */
    static Decision reject(Command c, int status, String kind, String detail) {
        Outcome o = new Outcome();
        o.commandId = c.id;
        o.status = status;
        o.body = problem(status, kind, detail);
        return new Decision(null, List.of(), o);
    }

    static ObjectNode problem(int status, String kind, String detail) {
        ObjectNode b = Json.object();
        b.put("type", "https://stockroom.dev/errors/" + kind)
                .put("title", title(status))
                .put("status", status)
                .put("detail", detail);
        return b;
    }

    static String title(int status) {
        return switch (status) {
            case 400 -> "Bad Request";
            case 404 -> "Not Found";
            case 409 -> "Conflict";
            case 412 -> "Precondition Failed";
            case 413 -> "Payload Too Large";
            case 422 -> "Unprocessable Entity";
            case 503 -> "Service Unavailable";
            default -> "Error";
        };
    }
}
