// Two Java consumers of one group (classic or KIP-848 "consumer" protocol), each polling in its
// own thread and committing after every non-empty poll. Prints one line per member:
// "member <i> assignment <partitions> committed <values...>", once the members share every
// partition and all expected records are committed (or the deadline passes).
// Usage: GroupMembers <bootstrap> <topic> <group> <protocol> <partitions> <expected records>
import java.time.Duration;
import java.util.*;
import java.util.concurrent.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;

public class GroupMembers {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], topic = args[1], group = args[2], protocol = args[3];
        int partitions = Integer.parseInt(args[4]), expected = Integer.parseInt(args[5]);
        List<List<String>> committed = new ArrayList<>();
        List<Set<Integer>> assignments = new ArrayList<>();
        List<Thread> threads = new ArrayList<>();
        CountDownLatch stop = new CountDownLatch(1);
        for (int i = 0; i < 2; i++) {
            List<String> mine = Collections.synchronizedList(new ArrayList<>());
            Set<Integer> held = ConcurrentHashMap.newKeySet();
            committed.add(mine);
            assignments.add(held);
            Properties p = new Properties();
            p.put("bootstrap.servers", bootstrap);
            p.put("group.id", group);
            p.put("group.protocol", protocol);
            p.put("auto.offset.reset", "earliest");
            p.put("enable.auto.commit", "false");
            if (protocol.equals("classic")) {
                p.put("session.timeout.ms", "6000");
                p.put("heartbeat.interval.ms", "300");
            }
            Thread t = new Thread(() -> {
                try (KafkaConsumer<String, String> c =
                         new KafkaConsumer<>(p, new StringDeserializer(), new StringDeserializer())) {
                    c.subscribe(List.of(topic));
                    while (stop.getCount() > 0) {
                        ConsumerRecords<String, String> records = c.poll(Duration.ofMillis(100));
                        List<String> values = new ArrayList<>();
                        records.forEach(r -> values.add(r.value()));
                        if (!values.isEmpty()) {
                            try {
                                c.commitSync();
                            } catch (Exception e) {
                                continue;   // partitions moved: the new owner reads them again
                            }
                            mine.addAll(values);
                        }
                        held.clear();
                        for (TopicPartition tp : c.assignment()) held.add(tp.partition());
                    }
                }
            });
            t.start();
            threads.add(t);
        }
        long deadline = System.currentTimeMillis() + 60000;
        while (System.currentTimeMillis() < deadline) {
            int total = committed.get(0).size() + committed.get(1).size();
            Set<Integer> union = new TreeSet<>(assignments.get(0));
            union.addAll(assignments.get(1));
            boolean shared = !assignments.get(0).isEmpty() && !assignments.get(1).isEmpty()
                && union.size() == partitions
                && assignments.get(0).size() + assignments.get(1).size() == partitions;
            if (total >= expected && shared) break;
            Thread.sleep(50);
        }
        for (int i = 0; i < 2; i++) {
            System.out.println("member " + i + " assignment " + new TreeSet<>(assignments.get(i))
                               + " committed " + String.join(" ", committed.get(i)));
        }
        stop.countDown();
        for (Thread t : threads) t.join(30000);
    }
}
