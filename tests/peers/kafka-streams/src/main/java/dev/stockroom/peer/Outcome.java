package dev.stockroom.peer;

import com.fasterxml.jackson.databind.node.ObjectNode;

/** The answer to one command, as the processor publishes it to `results` (key: the command id). */
public final class Outcome implements Cloneable {
    public String commandId;
    public int status;
    /** The JSON body: `{command_id, version, position, sku, ...}` or a problem. */
    public ObjectNode body;
    /** The product's version after the command (ETag), when accepted. */
    public Long version;
    public String position;
    public String location;
    /** The body hash of the request that set an idempotency key (to tell a replay from a reuse). */
    public String bodyHash;
    /** The reservation a 201 to a reservation made. */
    public String reservationId;

    /** This accepted outcome without its body, to remember by command id. */
    Outcome withoutBody() {
        try {
            Outcome o = (Outcome) clone();
            o.body = null;
            o.bodyHash = null;
            return o;
        } catch (CloneNotSupportedException e) {
            throw new AssertionError(e);
        }
    }

    /** A remembered accepted outcome with its body rebuilt, as first answered. */
    Outcome withBody(String sku) {
        Outcome o = withoutBody();
        o.body = Json.object();
        o.body.put("command_id", commandId).put("version", version).put("position", position).put("sku", sku);
        if (reservationId != null) {
            o.body.put("reservation_id", reservationId);
        }
        return o;
    }

    boolean problem() {
        return status >= 400;
    }
}
