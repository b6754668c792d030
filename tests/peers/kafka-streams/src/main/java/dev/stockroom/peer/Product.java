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
    /** How many recent command ids, and Idempotency-Keys, each SKU remembers. */
    static final int RECENT = 32;

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
    /**
     * Command id → what was answered, without its body (rebuilt from the rest): every
     * command re-reads and re-writes this value, so it is kept small. Oldest first.
     */
    public LinkedHashMap<String, Outcome> seen = new LinkedHashMap<>();
    /** Idempotency-Key → the whole first answer and its request's body hash. Oldest first. */
    public LinkedHashMap<String, Outcome> keys = new LinkedHashMap<>();

    static void remember(LinkedHashMap<String, Outcome> map, String key, Outcome outcome) {
        map.put(key, outcome);
        while (map.size() > RECENT) {
            map.remove(map.keySet().iterator().next());
        }
    }
}
