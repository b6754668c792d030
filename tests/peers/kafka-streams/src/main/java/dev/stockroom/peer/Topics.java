package dev.stockroom.peer;

/** The peer's topics, all with the same partition count (co-partitioned by SKU, as Stockroom's). */
record Topics(String commands, String events, String results) {
    static Topics of(String prefix) {
        return new Topics(prefix + ".commands", prefix + ".events", prefix + ".results");
    }
}
