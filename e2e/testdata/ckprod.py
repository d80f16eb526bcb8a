"""Produces one record with confluent-kafka (librdkafka): ckprod.py BROKER TOPIC."""
import sys

from confluent_kafka import Producer

p = Producer({"bootstrap.servers": sys.argv[1], "client.id": "ckprod"})
p.produce(sys.argv[2], b"hello from librdkafka")
if p.flush(20) != 0:
    sys.exit("not delivered")
print("produced")
