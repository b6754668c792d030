package dev.stockroom.peer;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The peer's search, on purpose minimal: the benchmark's mix sends GET /search (15% of
 * its operations; not counted as commands), so the peer answers it in Stockroom's shape
 * `{total, hits, facets: {category, brand}, next_cursor}` from an in-memory list of the
 * products this node registered (names, brands, categories, descriptions; every word of
 * the query must match, a trailing "s" ignored; sorted by SKU; no stock, no ranking,
 * no paging). This is far less work than Stockroom's tantivy catalog, which runs on the
 * same cores: it favours the peer.
 */
final class Catalog {
    private record Entry(ObjectNode doc, Set<String> words) {}

    private final Map<String, Entry> products = new ConcurrentHashMap<>();

    void put(String sku, JsonNode fields) {
        ObjectNode doc = Json.object();
        Entry old = products.get(sku);
        if (old != null) {
            doc.setAll(old.doc);
        }
        doc.put("sku", sku);
        for (String f : List.of("name", "brand", "category", "description", "price_cents", "currency", "gtin")) {
            if (fields.hasNonNull(f)) {
                doc.set(f, fields.get(f));
            }
        }
        Set<String> words = new HashSet<>();
        for (String f : List.of("name", "brand", "category", "description")) {
            words.addAll(words(doc.path(f).asText("")));
        }
        products.put(sku, new Entry(doc, words));
    }

    static List<String> words(String text) {
        List<String> out = new ArrayList<>();
        for (String w : text.toLowerCase().split("[^\\p{L}\\p{N}]+")) {
            if (!w.isEmpty()) {
                out.add(w.length() > 3 && w.endsWith("s") ? w.substring(0, w.length() - 1) : w);
            }
        }
        return out;
    }

    ObjectNode search(String q, int limit) {
        List<String> query = words(q == null ? "" : q);
        List<ObjectNode> hits = new ArrayList<>();
        Map<String, Integer> categories = new TreeMap<>();
        Map<String, Integer> brands = new TreeMap<>();
        for (Entry e : products.values()) {
            if (e.words.containsAll(query)) {
                hits.add(e.doc);
                categories.merge(e.doc.path("category").asText(""), 1, Integer::sum);
                brands.merge(e.doc.path("brand").asText(""), 1, Integer::sum);
            }
        }
        hits.sort(Comparator.comparing(d -> d.path("sku").asText()));
        ObjectNode out = Json.object();
        out.put("total", hits.size());
        ArrayNode h = out.putArray("hits");
        hits.stream().limit(limit).forEach(h::add);
        ObjectNode facets = out.putObject("facets");
        facets.set("category", counts(categories));
        facets.set("brand", counts(brands));
        out.putNull("next_cursor");
        return out;
    }

    private static ArrayNode counts(Map<String, Integer> counts) {
        ArrayNode a = Json.MAPPER.createArrayNode();
        counts.entrySet().stream()
                .filter(e -> !e.getKey().isEmpty())
                .sorted(Map.Entry.<String, Integer>comparingByValue().reversed())
                .forEach(e -> a.addObject().put("value", e.getKey()).put("count", e.getValue()));
        return a;
    }
}
