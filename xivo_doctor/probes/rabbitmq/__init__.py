"""RabbitMQ as the probes read it: rabbitmqctl and the management API, the
federation status parser, the probe message over AMQP.
"""
