package dev.stockroom.peer;

import com.fasterxml.jackson.databind.node.ObjectNode;

/** The answer to one command, as the processor publishes it to `results` (key: the command id). */
public final class Outcome {
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

    boolean problem() {
        return status >= 400;
    }
}
