package dev.stockroom.peer;

import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The state store's value for one SKU: the product, its version, its stock, its open
 * reservations, and the outcomes of its recent commands (by command id and by
 * Idempotency-Key) so that a command delivered twice, or a request sent twice with the
 * same key, is answered from memory instead of applied again.
 */
public final class Product {
    /** How many recent command ids and idempotency keys each SKU remembers. */
    static final int RECENT = 64;

    public String sku;
    public String name;
    public String description;
    public String brand;
    public String category;
    public String gtin;
    public String currency;
    public long priceCents;
    public String status = "active";
    public long version;
    public long onHand;
    public long reserved;
    /** Open reservations: id → quantity. */
    public Map<String, Long> reservations = new HashMap<>();
    /** "c:" + command id or "k:" + idempotency key → what was answered (insertion order: oldest first). */
    public LinkedHashMap<String, Outcome> recent = new LinkedHashMap<>();

    void remember(String key, Outcome outcome) {
        recent.put(key, outcome);
        while (recent.size() > RECENT) {
            recent.remove(recent.keySet().iterator().next());
        }
    }
}
