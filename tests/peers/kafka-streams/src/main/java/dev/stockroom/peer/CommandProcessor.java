package dev.stockroom.peer;

import com.fasterxml.jackson.databind.node.ObjectNode;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.Stores;

/**
 * The topology: `commands` (key: SKU) → decide (a RocksDB KeyValueStore SKU → Product,
 * logged to a changelog topic, with the record cache in front) → `events` (key: SKU) and
 * `results` (key: command id).
 *
 * What each guarantee means here. Under `exactly_once_v2` the store's changelog
 * writes, the events, the results and the consumed offset of `commands` are committed in
 * one Kafka transaction per task per commit interval; the HTTP node reads `results` with
 * `read_committed`, so a write is acknowledged only once all of that is committed, and a
 * crash before the commit aborts it all and the command is decided again. Under
 * `at_least_once` the outputs are sent as they are produced and the offsets committed
 * every commit interval (30 s by default); after a crash the commands since the last
 * offset commit are decided again: the store (restored from its changelog) remembers
 * recent command ids, so a command whose state change reached the changelog is answered
 * as before and not applied twice, but its events may be appended twice.
 */
final class CommandProcessor implements Processor<String, String, String, String> {
    static final String STORE = "products";

    private ProcessorContext<String, String> context;
    private KeyValueStore<String, Product> store;

    static Topology topology(Topics topics) {
        Topology t = new Topology();
        t.addSource("commands", new StringDeserializer(), new StringDeserializer(), topics.commands());
        t.addProcessor("decide", CommandProcessor::new, "commands");
        t.addStateStore(
                Stores.keyValueStoreBuilder(
                                Stores.persistentKeyValueStore(STORE), Serdes.String(), Json.serde(Product.class))
                        .withCachingEnabled()
                        .withLoggingEnabled(java.util.Map.of()),
                "decide");
        t.addSink("events", topics.events(), new StringSerializer(), new StringSerializer(), "decide");
        t.addSink("results", topics.results(), new StringSerializer(), new StringSerializer(), "decide");
        return t;
    }

    @Override
    public void init(ProcessorContext<String, String> context) {
        this.context = context;
        this.store = context.getStateStore(STORE);
    }

    @Override
    public void process(Record<String, String> record) {
        Command c;
        try {
            c = Json.read(record.value(), Command.class);
        } catch (RuntimeException e) {
            return; // not a command of ours: nobody waits for it
        }
        String position = context.recordMetadata()
                .map(m -> m.partition() + ":" + m.offset())
                .orElse(null);
        Decider.Decision d = Decider.decide(store.get(c.sku), c, position);
        if (d.next() != null) {
            store.put(c.sku, d.next());
        }
        for (ObjectNode e : d.events()) {
            context.forward(new Record<>(c.sku, Json.text(e), record.timestamp()), "events");
        }
        context.forward(new Record<>(c.id, Json.text(d.outcome()), record.timestamp()), "results");
    }
}
