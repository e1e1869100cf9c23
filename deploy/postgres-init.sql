-- Conversations (Rasa's tracker store) get their own database beside the appointment requests.
CREATE DATABASE hsg_conversations OWNER hsg;
