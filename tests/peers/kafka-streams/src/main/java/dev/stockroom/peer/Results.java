package dev.stockroom.peer;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Consumer;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;

/**
 * The HTTP node's side of `results`: a consumer of every partition (from the end, no
 * group) that completes the pending request of each outcome's command id. It reads
 * `read_committed`: under exactly-once, an outcome is answered only when the
 * transaction that wrote it (with the events and the store's changelog) is committed.
 */
final class Results implements Runnable {
    private final Map<String, CompletableFuture<Outcome>> pending = new ConcurrentHashMap<>();
    private final KafkaConsumer<String, String> consumer;
    private final Consumer<Outcome> observer;
    private volatile boolean running = true;

    Results(String bootstrap, String topic, Consumer<Outcome> observer) {
        this.observer = observer;
        consumer = new KafkaConsumer<>(
                Map.of(
                        ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap,
                        ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed",
                        ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false,
                        // Answer as soon as one outcome is there.
                        ConsumerConfig.FETCH_MIN_BYTES_CONFIG, 1,
                        ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG, 100),
                new StringDeserializer(),
                new StringDeserializer());
        List<TopicPartition> parts = consumer.partitionsFor(topic).stream()
                .map(p -> new TopicPartition(topic, p.partition()))
                .toList();
        consumer.assign(parts);
        consumer.seekToEnd(parts);
        parts.forEach(consumer::position); // resolve "the end" now, before the first request
    }

    CompletableFuture<Outcome> expect(String commandId) {
        CompletableFuture<Outcome> f = new CompletableFuture<>();
        pending.put(commandId, f);
        return f;
    }

    void forget(String commandId) {
        pending.remove(commandId);
    }

    void fail(String commandId, Throwable cause) {
        CompletableFuture<Outcome> f = pending.remove(commandId);
        if (f != null) {
            f.completeExceptionally(cause);
        }
    }

    void stop() {
        running = false;
        consumer.wakeup();
    }

    @Override
    public void run() {
        try {
            while (running) {
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(500))) {
                    CompletableFuture<Outcome> f = pending.remove(r.key());
                    if (f == null) {
                        continue; // another node's, or one that timed out
                    }
                    Outcome o = Json.read(r.value(), Outcome.class);
                    observer.accept(o);
                    f.complete(o);
                }
            }
        } catch (org.apache.kafka.common.errors.WakeupException e) {
            // stopping
        } finally {
            consumer.close();
        }
    }
}
