// kbroker compat: drives the official Java client (kafka-clients) for compat/clients/java_client.py.
// Protocol: one JSON request per stdin line {"id","op","args"}, one JSON answer per stdout line
// {"id","ok","result"} or {"id","ok":false,"kind","error"}; a {"hello":...} line at start-up.
// One process serves the whole run because JVM start-up is slow.

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.*;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.*;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.InvalidProducerEpochException;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.utils.AppInfoParser;

public final class Driver {
    static final long TIMEOUT_MS = 30_000;
    final String bootstrap;
    final Admin admin;
    final Map<String, KafkaConsumer<byte[], byte[]>> members = new HashMap<>();
    final Map<String, KafkaProducer<byte[], byte[]>> txn = new HashMap<>();

    Driver(String bootstrap) {
        this.bootstrap = bootstrap;
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        this.admin = Admin.create(p);
    }

    public static void main(String[] argv) throws Exception {
        PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
        System.setOut(System.err); // stray prints from libraries must not corrupt the protocol
        Driver d = new Driver(argv[0]);
        Map<String, Object> hello = new LinkedHashMap<>();
        hello.put("hello", true);
        hello.put("version", AppInfoParser.getVersion());
        out.println(Json.write(hello));
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null) {
            if (line.isBlank()) continue;
            Map<String, Object> req = Json.obj(Json.parse(line));
            Map<String, Object> resp = new LinkedHashMap<>();
            resp.put("id", req.get("id"));
            try {
                resp.put("result", d.dispatch((String) req.get("op"), Json.obj(req.get("args"))));
                resp.put("ok", true);
            } catch (Throwable t) {
                Throwable c = t;
                while (c instanceof ExecutionException && c.getCause() != null) c = c.getCause();
                boolean fenced = false;
                for (Throwable x = c; x != null; x = x.getCause()) {
                    fenced |= x instanceof ProducerFencedException || x instanceof InvalidProducerEpochException;
                }
                resp.put("ok", false);
                resp.put("kind", c instanceof UnsupportedOperationException ? "unsupported" : fenced ? "fenced" : "error");
                resp.put("error", c.getClass().getSimpleName() + ": " + c.getMessage());
            }
            out.println(Json.write(resp));
        }
        d.cleanup();
        d.admin.close(Duration.ofSeconds(5));
    }

    Object dispatch(String op, Map<String, Object> a) throws Exception {
        switch (op) {
            case "cleanup": cleanup(); return null;
            case "metadata": return metadata();
            case "create_topic": {
                NewTopic t = new NewTopic(str(a, "topic"), num(a, "partitions"), (short) 1);
                Map<String, String> configs = new HashMap<>();
                Json.obj(a.get("configs")).forEach((k, v) -> configs.put(k, (String) v));
                t.configs(configs);
                admin.createTopics(List.of(t)).all().get(TIMEOUT_MS, TimeUnit.MILLISECONDS);
                return null;
            }
            case "delete_topic":
                admin.deleteTopics(List.of(str(a, "topic"))).all().get(TIMEOUT_MS, TimeUnit.MILLISECONDS);
                return null;
            case "list_topics": {
                Set<String> names = admin.listTopics().names().get(TIMEOUT_MS, TimeUnit.MILLISECONDS);
                Map<String, Object> out = new TreeMap<>();
                if (!names.isEmpty()) {
                    admin.describeTopics(names).allTopicNames().get(TIMEOUT_MS, TimeUnit.MILLISECONDS)
                            .forEach((n, desc) -> out.put(n, desc.partitions().size()));
                }
                return out;
            }
            case "create_partitions":
                admin.createPartitions(Map.of(str(a, "topic"), NewPartitions.increaseTo(num(a, "total"))))
                        .all().get(TIMEOUT_MS, TimeUnit.MILLISECONDS);
                return null;
            case "describe_topic_config": {
                ConfigResource r = new ConfigResource(ConfigResource.Type.TOPIC, str(a, "topic"));
                Config c = admin.describeConfigs(List.of(r)).all().get(TIMEOUT_MS, TimeUnit.MILLISECONDS).get(r);
                Map<String, Object> out = new TreeMap<>();
                for (ConfigEntry e : c.entries()) out.put(e.name(), e.value());
                return out;
            }
            case "alter_topic_config": {
                ConfigResource r = new ConfigResource(ConfigResource.Type.TOPIC, str(a, "topic"));
                List<AlterConfigOp> ops = new ArrayList<>();
                Json.obj(a.get("updates")).forEach((k, v) -> ops.add(new AlterConfigOp(new ConfigEntry(k, (String) v),
                        v == null ? AlterConfigOp.OpType.DELETE : AlterConfigOp.OpType.SET)));
                admin.incrementalAlterConfigs(Map.of(r, ops)).all().get(TIMEOUT_MS, TimeUnit.MILLISECONDS);
                return null;
            }
            case "delete_records": {
                TopicPartition tp = new TopicPartition(str(a, "topic"), num(a, "partition"));
                return admin.deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(lng(a, "before"))))
                        .lowWatermarks().get(tp).get(TIMEOUT_MS, TimeUnit.MILLISECONDS).lowWatermark();
            }
            case "list_offsets": {
                TopicPartition tp = new TopicPartition(str(a, "topic"), num(a, "partition"));
                Object spec = a.get("spec");
                OffsetSpec s = "earliest".equals(spec) ? OffsetSpec.earliest() : "latest".equals(spec) ? OffsetSpec.latest()
                        : OffsetSpec.forTimestamp(((Number) spec).longValue());
                return admin.listOffsets(Map.of(tp, s)).partitionResult(tp).get(TIMEOUT_MS, TimeUnit.MILLISECONDS).offset();
            }
            case "list_groups": {
                List<Object> out = new ArrayList<>();
                for (ConsumerGroupListing g : admin.listConsumerGroups().all().get(TIMEOUT_MS, TimeUnit.MILLISECONDS))
                    out.add(g.groupId());
                return out;
            }
            case "describe_group": {
                String g = str(a, "group");
                ConsumerGroupDescription d = admin.describeConsumerGroups(List.of(g)).describedGroups().get(g)
                        .get(TIMEOUT_MS, TimeUnit.MILLISECONDS);
                Map<String, Object> out = new LinkedHashMap<>();
                out.put("state", d.state().toString());
                out.put("members", d.members().size());
                return out;
            }
            case "delete_group":
                admin.deleteConsumerGroups(List.of(str(a, "group"))).all().get(TIMEOUT_MS, TimeUnit.MILLISECONDS);
                return null;
            case "committed": {
                String topic = str(a, "topic");
                Map<TopicPartition, OffsetAndMetadata> offs = admin.listConsumerGroupOffsets(str(a, "group"))
                        .partitionsToOffsetAndMetadata().get(TIMEOUT_MS, TimeUnit.MILLISECONDS);
                Map<String, Object> out = new TreeMap<>();
                for (int p = 0; p < num(a, "partitions"); p++) out.put(Integer.toString(p), -1L);
                offs.forEach((tp, om) -> { if (tp.topic().equals(topic) && om != null) out.put(Integer.toString(tp.partition()), om.offset()); });
                return out;
            }
            case "produce": return produce(a);
            case "consume": return consume(a);
            case "group_open": groupOpen(a); return null;
            case "group_poll": return records(member(a).poll(Duration.ofMillis(lng(a, "timeout_ms"))));
            case "group_assignment": {
                List<Object> out = new ArrayList<>();
                for (TopicPartition tp : member(a).assignment()) out.add(List.of(tp.topic(), tp.partition()));
                return out;
            }
            case "group_commit": member(a).commitSync(Duration.ofMillis(TIMEOUT_MS)); return null;
            case "group_close": members.remove(str(a, "handle")).close(Duration.ofSeconds(10)); return null;
            case "txn_open": {
                Properties p = producerProps();
                p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, str(a, "transactional_id"));
                p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "20000"); // initTransactions waits this long
                KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p);
                txn.put(str(a, "handle"), producer);
                producer.initTransactions();
                return null;
            }
            case "txn_begin": txnProducer(a).beginTransaction(); return null;
            case "txn_produce": send(txnProducer(a), str(a, "topic"), Json.list(a.get("records"))); return null;
            case "txn_send_offsets": {
                Map<TopicPartition, OffsetAndMetadata> offs = new HashMap<>();
                for (Object o : Json.list(a.get("offsets"))) {
                    List<Object> t = Json.list(o);
                    offs.put(new TopicPartition((String) t.get(0), ((Number) t.get(1)).intValue()),
                            new OffsetAndMetadata(((Number) t.get(2)).longValue()));
                }
                txnProducer(a).sendOffsetsToTransaction(offs, members.get(str(a, "group_handle")).groupMetadata());
                return null;
            }
            case "txn_commit": txnProducer(a).commitTransaction(); return null;
            case "txn_abort": txnProducer(a).abortTransaction(); return null;
            default: throw new UnsupportedOperationException(op);
        }
    }

    void cleanup() {
        for (KafkaConsumer<byte[], byte[]> c : members.values()) {
            try { c.close(Duration.ofSeconds(5)); } catch (RuntimeException e) { /* closing a broken member */ }
        }
        members.clear();
        for (KafkaProducer<byte[], byte[]> p : txn.values()) {
            try { p.close(Duration.ofSeconds(5)); } catch (RuntimeException e) { /* closing a fenced producer */ }
        }
        txn.clear();
    }

    Object metadata() throws Exception {
        DescribeClusterResult r = admin.describeCluster();
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("cluster_id", r.clusterId().get(TIMEOUT_MS, TimeUnit.MILLISECONDS));
        Node controller = r.controller().get(TIMEOUT_MS, TimeUnit.MILLISECONDS);
        out.put("controller_id", controller == null ? null : controller.id());
        List<Object> brokers = new ArrayList<>();
        for (Node n : r.nodes().get(TIMEOUT_MS, TimeUnit.MILLISECONDS)) {
            Map<String, Object> b = new LinkedHashMap<>();
            b.put("id", n.id());
            b.put("host", n.host());
            b.put("port", n.port());
            brokers.add(b);
        }
        out.put("brokers", brokers);
        return out;
    }

    Properties producerProps() {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        return p;
    }

    Object produce(Map<String, Object> a) throws Exception {
        Properties p = producerProps();
        p.put(ProducerConfig.ACKS_CONFIG, str(a, "acks"));
        p.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, str(a, "compression"));
        p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, Boolean.toString(Boolean.TRUE.equals(a.get("idempotent"))));
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
            return send(producer, str(a, "topic"), Json.list(a.get("records")));
        }
    }

    static List<Object> send(KafkaProducer<byte[], byte[]> producer, String topic, List<Object> records) throws Exception {
        List<Future<RecordMetadata>> futures = new ArrayList<>();
        for (Object o : records) {
            Map<String, Object> r = Json.obj(o);
            List<Header> headers = new ArrayList<>();
            for (Object h : Json.list(r.getOrDefault("headers", List.of()))) {
                List<Object> kv = Json.list(h);
                headers.add(new org.apache.kafka.common.header.internals.RecordHeader((String) kv.get(0), unb64(kv.get(1))));
            }
            Integer partition = r.get("partition") == null ? null : ((Number) r.get("partition")).intValue();
            Long ts = r.get("timestamp") == null ? null : ((Number) r.get("timestamp")).longValue();
            futures.add(producer.send(new ProducerRecord<>(topic, partition, ts, unb64(r.get("key")), unb64(r.get("value")), headers)));
        }
        producer.flush();
        List<Object> out = new ArrayList<>();
        for (Future<RecordMetadata> f : futures) {
            RecordMetadata md = f.get(120, TimeUnit.SECONDS);
            out.add(List.of(md.partition(), md.offset()));
        }
        return out;
    }

    Properties consumerProps() {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        return p;
    }

    Object consume(Map<String, Object> a) {
        Properties p = consumerProps();
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, str(a, "isolation"));
        String topic = str(a, "topic");
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(p)) {
            List<TopicPartition> tps = new ArrayList<>();
            for (Object o : Json.list(a.get("partitions"))) tps.add(new TopicPartition(topic, ((Number) o).intValue()));
            c.assign(tps);
            Object start = a.get("start");
            if ("earliest".equals(start)) c.seekToBeginning(tps);
            else if ("latest".equals(start)) c.seekToEnd(tps);
            else {
                Map<String, Object> s = Json.obj(start);
                if (s.containsKey("timestamp")) {
                    Map<TopicPartition, Long> q = new HashMap<>();
                    for (TopicPartition tp : tps) q.put(tp, ((Number) s.get("timestamp")).longValue());
                    Map<TopicPartition, OffsetAndTimestamp> found = c.offsetsForTimes(q);
                    for (TopicPartition tp : tps) {
                        if (found.get(tp) == null) c.seekToEnd(List.of(tp)); else c.seek(tp, found.get(tp).offset());
                    }
                } else {
                    Map<String, Object> offs = Json.obj(s.get("offsets"));
                    for (TopicPartition tp : tps) c.seek(tp, ((Number) offs.get(Integer.toString(tp.partition()))).longValue());
                }
            }
            long count = lng(a, "count");
            long deadline = System.currentTimeMillis() + lng(a, "timeout_ms");
            List<Object> out = new ArrayList<>();
            while (out.size() < count && System.currentTimeMillis() < deadline) out.addAll(records(c.poll(Duration.ofMillis(500))));
            return out;
        }
    }

    void groupOpen(Map<String, Object> a) {
        Properties p = consumerProps();
        p.put(ConsumerConfig.GROUP_ID_CONFIG, str(a, "group"));
        if ("consumer".equals(a.get("protocol"))) {
            p.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "consumer"); // KIP-848: the broker assigns
        } else {
            p.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, "cooperative-sticky".equals(a.get("assignor"))
                    ? CooperativeStickyAssignor.class.getName() : RangeAssignor.class.getName());
            p.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, "10000");
            p.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, "1000");
        }
        if (a.get("instance_id") != null) p.put(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, str(a, "instance_id"));
        KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(p);
        c.subscribe(Json.list(a.get("topics")).stream().map(Object::toString).toList());
        members.put(str(a, "handle"), c);
    }

    KafkaConsumer<byte[], byte[]> member(Map<String, Object> a) { return members.get(str(a, "handle")); }

    KafkaProducer<byte[], byte[]> txnProducer(Map<String, Object> a) { return txn.get(str(a, "handle")); }

    static List<Object> records(ConsumerRecords<byte[], byte[]> recs) {
        List<Object> out = new ArrayList<>();
        for (ConsumerRecord<byte[], byte[]> r : recs) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("partition", r.partition());
            m.put("offset", r.offset());
            m.put("key", b64(r.key()));
            m.put("value", b64(r.value()));
            List<Object> hs = new ArrayList<>();
            for (Header h : r.headers()) hs.add(Arrays.asList(h.key(), b64(h.value())));
            m.put("headers", hs);
            m.put("timestamp", r.timestamp());
            out.add(m);
        }
        return out;
    }

    static String str(Map<String, Object> a, String k) { return (String) a.get(k); }
    static int num(Map<String, Object> a, String k) { return ((Number) a.get(k)).intValue(); }
    static long lng(Map<String, Object> a, String k) { return ((Number) a.get(k)).longValue(); }
    static String b64(byte[] b) { return b == null ? null : Base64.getEncoder().encodeToString(b); }
    static byte[] unb64(Object s) { return s == null ? null : Base64.getDecoder().decode((String) s); }

    /** Just enough JSON for the driver protocol: objects, arrays, strings, numbers, booleans, null. */
    static final class Json {
        private final String s;
        private int i;

        private Json(String s) { this.s = s; }

        static Object parse(String text) { Json j = new Json(text); Object v = j.value(); return v; }

        @SuppressWarnings("unchecked") static Map<String, Object> obj(Object o) { return o == null ? new HashMap<>() : (Map<String, Object>) o; }
        @SuppressWarnings("unchecked") static List<Object> list(Object o) { return o == null ? new ArrayList<>() : (List<Object>) o; }

        private void ws() { while (i < s.length() && Character.isWhitespace(s.charAt(i))) i++; }

        private Object value() {
            ws();
            char c = s.charAt(i);
            if (c == '{') {
                Map<String, Object> m = new LinkedHashMap<>();
                i++; ws();
                if (s.charAt(i) == '}') { i++; return m; }
                while (true) {
                    ws(); String k = string(); ws(); i++; // ':'
                    m.put(k, value()); ws();
                    if (s.charAt(i++) == '}') return m;
                }
            }
            if (c == '[') {
                List<Object> l = new ArrayList<>();
                i++; ws();
                if (s.charAt(i) == ']') { i++; return l; }
                while (true) {
                    l.add(value()); ws();
                    if (s.charAt(i++) == ']') return l;
                }
            }
            if (c == '"') return string();
            if (s.startsWith("true", i)) { i += 4; return Boolean.TRUE; }
            if (s.startsWith("false", i)) { i += 5; return Boolean.FALSE; }
            if (s.startsWith("null", i)) { i += 4; return null; }
            int start = i;
            while (i < s.length() && "+-0123456789.eE".indexOf(s.charAt(i)) >= 0) i++;
            String n = s.substring(start, i);
            if (n.contains(".") || n.contains("e") || n.contains("E")) return Double.parseDouble(n);
            return Long.parseLong(n);
        }

        private String string() {
            StringBuilder b = new StringBuilder();
            i++; // opening quote
            while (true) {
                char c = s.charAt(i++);
                if (c == '"') return b.toString();
                if (c != '\\') { b.append(c); continue; }
                char e = s.charAt(i++);
                switch (e) {
                    case 'n': b.append('\n'); break;
                    case 't': b.append('\t'); break;
                    case 'r': b.append('\r'); break;
                    case 'b': b.append('\b'); break;
                    case 'f': b.append('\f'); break;
                    case 'u': b.append((char) Integer.parseInt(s.substring(i, i + 4), 16)); i += 4; break;
                    default: b.append(e);
                }
            }
        }

        static String write(Object o) { StringBuilder b = new StringBuilder(); write(b, o); return b.toString(); }

        private static void write(StringBuilder b, Object o) {
            if (o == null) b.append("null");
            else if (o instanceof String) quote(b, (String) o);
            else if (o instanceof Number || o instanceof Boolean) b.append(o);
            else if (o instanceof Map) {
                b.append('{');
                boolean first = true;
                for (Map.Entry<?, ?> e : ((Map<?, ?>) o).entrySet()) {
                    if (!first) b.append(',');
                    first = false;
                    quote(b, e.getKey().toString());
                    b.append(':');
                    write(b, e.getValue());
                }
                b.append('}');
            } else if (o instanceof Collection) {
                b.append('[');
                boolean first = true;
                for (Object e : (Collection<?>) o) {
                    if (!first) b.append(',');
                    first = false;
                    write(b, e);
                }
                b.append(']');
            } else quote(b, o.toString());
        }

        private static void quote(StringBuilder b, String s) {
            b.append('"');
            for (int k = 0; k < s.length(); k++) {
                char c = s.charAt(k);
                if (c == '"' || c == '\\') b.append('\\').append(c);
                else if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
                else b.append(c);
            }
            b.append('"');
        }
    }
}
