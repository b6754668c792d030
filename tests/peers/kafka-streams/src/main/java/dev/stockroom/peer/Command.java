package dev.stockroom.peer;

import com.fasterxml.jackson.databind.node.ObjectNode;

/** A write as the HTTP node produces it to the `commands` topic (key: the SKU). */
public final class Command {
    /** register, update, receive, reserve, confirm, release. */
    public String type;
    public String id;
    public String sku;
    /** The reservation of confirm and release. */
    public String reservationId;
    /** The request's Idempotency-Key, if any, and a hash of its body (same key + another body → 422). */
    public String idempotencyKey;
    public String bodyHash;
    /** If-Match: the version the client expects, if any. */
    public Long ifMatch;
    /** The request's body, already validated by the HTTP node. */
    public ObjectNode body;
}
