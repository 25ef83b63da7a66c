// Java client driver for kbroker's benchmark (java-produce, java-consume).
//
// Usage: java Bench produce|consume BOOTSTRAP TOPIC COUNT VALUE_SIZE CAP_SECONDS [key=value ...]
// The key=value pairs are client configs. Prints one JSON line on stdout with what the timed
// window achieved: records, errors, seconds, cpu_seconds (this JVM's CPU in the window) and
// sampled latencies (produce only: send() -> acknowledgement, every 1000th record).
import java.lang.management.ManagementFactory;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Properties;
import java.util.Random;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public final class Bench {
    private static final int SAMPLE_EVERY = 1000;

    private Bench() {}

    private static long cpuNanos() {
        // com.sun.management exposes the process CPU time; the JVM counts all its threads.
        return ((com.sun.management.OperatingSystemMXBean)
                ManagementFactory.getOperatingSystemMXBean()).getProcessCpuTime();
    }

    public static void main(String[] args) throws Exception {
        String mode = args[0];
        Properties props = new Properties();
        props.put("bootstrap.servers", args[1]);
        String topic = args[2];
        long count = Long.parseLong(args[3]);
        int valueSize = Integer.parseInt(args[4]);
        double capSeconds = Double.parseDouble(args[5]);
        for (int i = 6; i < args.length; i++) {
            int eq = args[i].indexOf('=');
            props.put(args[i].substring(0, eq), args[i].substring(eq + 1));
        }
        String result = mode.equals("produce")
                ? produce(props, topic, count, valueSize, capSeconds)
                : consume(props, topic, count, capSeconds);
        System.out.println(result);
    }

    private static String produce(Properties props, String topic, long count, int valueSize,
                                  double capSeconds) throws Exception {
        byte[] value = new byte[valueSize];
        new Random(1).nextBytes(value);
        AtomicLong errors = new AtomicLong();
        List<Double> latencies = Collections.synchronizedList(new ArrayList<>());
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(
                props, new ByteArraySerializer(), new ByteArraySerializer())) {
            // Connection and metadata set-up outside the timed window.
            producer.send(new ProducerRecord<>(topic, value)).get();
            long cpuStart = cpuNanos();
            long start = System.nanoTime();
            long deadline = start + (long) (capSeconds * 1e9);
            long sent = 0;
            while (sent < count) {
                ProducerRecord<byte[], byte[]> record = new ProducerRecord<>(topic, value);
                if (sent % SAMPLE_EVERY == 0) {
                    long sentAt = System.nanoTime();
                    producer.send(record, (metadata, exception) -> {
                        if (exception != null) {
                            errors.incrementAndGet();
                        } else {
                            latencies.add((System.nanoTime() - sentAt) / 1e6);
                        }
                    });
                } else {
                    producer.send(record, (metadata, exception) -> {
                        if (exception != null) {
                            errors.incrementAndGet();
                        }
                    });
                }
                sent++;
                if (sent % 10_000 == 0 && System.nanoTime() > deadline) {
                    break;
                }
            }
            producer.flush();
            double seconds = (System.nanoTime() - start) / 1e9;
            double cpu = (cpuNanos() - cpuStart) / 1e9;
            return json(sent - errors.get(), errors.get(), seconds, cpu, latencies);
        }
    }

    private static String consume(Properties props, String topic, long count, double capSeconds) {
        // As the Python consume scenario: the rate window starts when the first batch arrives
        // and counts the records after it; "records" is the timed count, "total" all of them.
        TopicPartition partition = new TopicPartition(topic, 0);
        long records = 0;
        long firstBatch = 0;
        long firstAt = 0;
        long cpuStart = 0;
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(
                props, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
            long start = System.nanoTime();
            long deadline = start + (long) (capSeconds * 1e9);
            consumer.assign(Collections.singletonList(partition));
            consumer.seek(partition, 0L);
            while (records < count && System.nanoTime() < deadline) {
                ConsumerRecords<byte[], byte[]> batch = consumer.poll(Duration.ofMillis(1000));
                records += batch.count();
                if (firstBatch == 0 && records > 0) {
                    firstBatch = records;
                    firstAt = System.nanoTime();
                    cpuStart = cpuNanos();
                }
            }
            double seconds = (System.nanoTime() - firstAt) / 1e9;
            double cpu = (cpuNanos() - cpuStart) / 1e9;
            String out = json(records - firstBatch, 0, seconds, cpu, new ArrayList<>());
            return out.substring(0, out.length() - 1) + ", \"total\": " + records
                    + ", \"first_record_ms\": " + (firstAt - start) / 1e6 + "}";
        }
    }

    private static String json(long records, long errors, double seconds, double cpu,
                               List<Double> latencies) {
        StringBuilder out = new StringBuilder();
        out.append("{\"records\": ").append(records)
           .append(", \"errors\": ").append(errors)
           .append(", \"seconds\": ").append(seconds)
           .append(", \"cpu_seconds\": ").append(cpu)
           .append(", \"latencies_ms\": [");
        synchronized (latencies) {
            for (int i = 0; i < latencies.size(); i++) {
                if (i > 0) {
                    out.append(", ");
                }
                out.append(latencies.get(i));
            }
        }
        return out.append("]}").toString();
    }
}
