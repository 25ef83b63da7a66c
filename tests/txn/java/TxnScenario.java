// The transactional scenario with the Java client (kafka-clients 3.9): an aborted and a
// committed transaction, then fencing by a second producer with the same transactional.id,
// then a read_committed and a read_uncommitted consumer. Prints:
//   "fenced <exception class>"  "committed <values...>"  "uncommitted <values...>"
// Usage: TxnScenario <bootstrap> <topic> <transactional id>
import java.time.Duration;
import java.util.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class TxnScenario {
    static KafkaProducer<String, String> producer(String bootstrap, String txnId) {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("transactional.id", txnId);
        p.put("transaction.timeout.ms", "30000");
        KafkaProducer<String, String> producer =
            new KafkaProducer<>(p, new StringSerializer(), new StringSerializer());
        producer.initTransactions();
        return producer;
    }

    static List<String> read(String bootstrap, String topic, String isolation, int expected) {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("isolation.level", isolation);
        p.put("enable.auto.commit", "false");
        List<String> values = new ArrayList<>();
        try (KafkaConsumer<String, String> c =
                 new KafkaConsumer<>(p, new StringDeserializer(), new StringDeserializer())) {
            TopicPartition tp = new TopicPartition(topic, 0);
            c.assign(List.of(tp));
            c.seekToBeginning(List.of(tp));
            long deadline = System.currentTimeMillis() + 20000;
            long settle = Long.MAX_VALUE;
            while (System.currentTimeMillis() < Math.min(deadline, settle)) {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) values.add(r.value());
                if (values.size() >= expected && settle == Long.MAX_VALUE) settle = System.currentTimeMillis() + 1000;
            }
        }
        return values;
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], topic = args[1], txnId = args[2];
        KafkaProducer<String, String> first = producer(bootstrap, txnId);
        first.beginTransaction();
        for (int i = 0; i < 3; i++) first.send(new ProducerRecord<>(topic, 0, null, "aborted-" + i));
        first.flush();
        first.abortTransaction();
        first.beginTransaction();
        for (int i = 0; i < 3; i++) first.send(new ProducerRecord<>(topic, 0, null, "committed-" + i));
        first.commitTransaction();

        first.beginTransaction();
        first.send(new ProducerRecord<>(topic, 0, null, "zombie")).get();
        KafkaProducer<String, String> second = producer(bootstrap, txnId);
        try {
            first.commitTransaction();
            System.out.println("fenced none");
        } catch (Exception e) {
            System.out.println("fenced " + e.getClass().getSimpleName());
        }
        first.close(Duration.ofSeconds(5));
        second.beginTransaction();
        second.send(new ProducerRecord<>(topic, 0, null, "winner"));
        second.commitTransaction();
        second.close(Duration.ofSeconds(5));

        System.out.println("committed " + String.join(" ", read(bootstrap, topic, "read_committed", 4)));
        System.out.println("uncommitted " + String.join(" ", read(bootstrap, topic, "read_uncommitted", 8)));
    }
}
